"""Who is asking: a signed-in user or the owner of an API token, with their company and role."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from sqlalchemy.orm import Session

from casemail.auth.tokens import verify_token
from casemail.db.models import User

Role = Literal["admin", "agent"]


@dataclass(frozen=True)
class Principal:
    user_id: int
    company_id: int
    role: Role
    name: str
    email: str

    @property
    def is_admin(self) -> bool:
        return self.role == "admin"


def principal_of(user: User) -> Principal | None:
    """The user as a principal; None for an inactive user (their tokens stop working)."""
    if not user.active:
        return None
    role: Role = "admin" if user.role == "admin" else "agent"
    return Principal(user.id, user.company_id, role, user.name, user.email)


def principal_for_token(session: Session, token: str) -> Principal | None:
    row = verify_token(session, token)
    if row is None or row.user_id is None:
        return None
    user = session.get(User, row.user_id)
    return principal_of(user) if user is not None else None
