"""API shapes for users and teams."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field


class UserCreate(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    name: str = Field(min_length=1, max_length=200)
    email: str
    role: Literal["admin", "agent"] = "agent"
    teams: list[int | str] = Field(default_factory=list, description="Team ids or names.")
    # Not stripped: a password is taken exactly as typed (the strength check refuses
    # leading and trailing spaces rather than silently dropping them).
    password: str | None = Field(
        None,
        description="For signing in to the web app; left out, the user cannot sign in "
        "with a password until one is set.",
        json_schema_extra={"writeOnly": True, "format": "password"},
    )


class UserUpdate(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    name: str | None = Field(None, min_length=1, max_length=200)
    role: Literal["admin", "agent"] | None = None
    active: bool | None = Field(None, description="False: the user can no longer sign in.")
    password: str | None = Field(None, json_schema_extra={"writeOnly": True, "format": "password"})


class UserPublic(BaseModel):
    id: int
    company_id: int
    name: str
    email: str
    role: str
    active: bool
    team_ids: list[int]
    can_sign_in: bool = Field(description="A password is set (the password itself never leaves).")


class TokenCreate(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    name: str = Field(min_length=1, max_length=200, description="What the token is for.")


class TokenPublic(BaseModel):
    id: int
    name: str
    user_id: int
    created_at: datetime
    last_used_at: datetime | None
    revoked_at: datetime | None


class TokenCreated(TokenPublic):
    token: str = Field(description="Shown this once; only a hash of it is kept.")


class TeamCreate(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    name: str = Field(min_length=1, max_length=200)
    members: list[int | str] = Field(default_factory=list, description="User ids or emails.")


class TeamPublic(BaseModel):
    id: int
    name: str
    member_ids: list[int]


class MemberAdd(BaseModel):
    model_config = ConfigDict(extra="forbid")

    user: int | str = Field(description="User id or email.")
