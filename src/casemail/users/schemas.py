"""API shapes for users and teams."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field


class UserCreate(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    name: str = Field(min_length=1, max_length=200)
    email: str
    role: Literal["admin", "agent"] = "agent"
    teams: list[int | str] = Field(default_factory=list, description="Team ids or names.")


class UserPublic(BaseModel):
    id: int
    name: str
    email: str
    role: str
    active: bool
    team_ids: list[int]


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
