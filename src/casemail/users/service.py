"""Create and find users and teams. Errors are ``UserError`` with a message for people."""

from __future__ import annotations

from typing import Literal

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from casemail.accounts.validation import check_address
from casemail.auth.passwords import WeakPassword, hash_password
from casemail.auth.tenancy import owning_company
from casemail.db.models import Team, TeamMember, User
from casemail.users.schemas import UserUpdate

UserRole = Literal["admin", "agent"]


class UserError(ValueError):
    """Bad input or a conflict; ``status`` is the HTTP status the API answers with."""

    def __init__(self, message: str, *, status: int = 422) -> None:
        super().__init__(message)
        self.status = status


def create_user(
    session: Session,
    *,
    name: str,
    email: str,
    role: UserRole = "agent",
    company_id: int | None = None,
    password: str | None = None,
) -> User:
    address = _address(email)
    taken = UserError(f"a user with the email {address} exists already", status=409)
    if session.scalar(select(User).where(User.email == address)) is not None:
        raise taken
    user = User(
        company_id=owning_company(session, company_id),
        name=name.strip(),
        email=address,
        role=role,
        password_hash=_hash(password) if password is not None else None,
    )
    try:
        # A user of another company (invisible to a scoped session) may have the address:
        # emails are unique across the installation, since they sign in with it.
        with session.begin_nested():
            session.add(user)
    except IntegrityError as exc:
        raise taken from exc
    return user


def set_password(user: User, password: str) -> None:
    user.password_hash = _hash(password)


def update_user(session: Session, user: User, changes: UserUpdate, *, acting_user_id: int) -> None:
    if user.id == acting_user_id and (
        changes.active is False or (changes.role is not None and changes.role != "admin")
    ):
        raise UserError("you cannot demote or deactivate yourself; ask another admin", status=409)
    if changes.name is not None:
        user.name = changes.name
    if changes.role is not None:
        user.role = changes.role
    if changes.active is not None:
        user.active = changes.active
    if changes.password is not None:
        set_password(user, changes.password)
    session.flush()


def _hash(password: str) -> str:
    try:
        return hash_password(password)
    except WeakPassword as exc:
        raise UserError(str(exc)) from exc


def create_team(session: Session, *, name: str, company_id: int | None = None) -> Team:
    clean = name.strip()
    if not clean:
        raise UserError("a team needs a name")
    same_name = select(Team).where(
        Team.name == clean, Team.company_id == owning_company(session, company_id)
    )
    if session.scalar(same_name) is not None:
        raise UserError(f"a team named {clean!r} exists already", status=409)
    team = Team(company_id=owning_company(session, company_id), name=clean)
    session.add(team)
    session.flush()
    return team


def find_user(session: Session, ref: int | str) -> User:
    """A user by id or by email address."""
    if isinstance(ref, int) or ref.isdigit():
        user = session.get(User, int(ref))
    else:
        # Looked up as typed (lower case), not validated: an address made by a migration
        # (admin@casemail.localhost) must still be found.
        user = session.scalar(select(User).where(User.email == ref.strip().lower()))
    if user is None:
        raise UserError(f"no user {ref!r}", status=404)
    return user


def find_team(session: Session, ref: int | str) -> Team:
    """A team by id or by name."""
    if isinstance(ref, int) or ref.isdigit():
        team = session.get(Team, int(ref))
    else:
        team = session.scalar(select(Team).where(Team.name == ref.strip()))
    if team is None:
        raise UserError(f"no team {ref!r}", status=404)
    return team


def add_member(session: Session, team: Team, user: User) -> None:
    if session.get(TeamMember, (team.id, user.id)) is None:
        session.add(TeamMember(team_id=team.id, user_id=user.id))
        session.flush()


def remove_member(session: Session, team: Team, user: User) -> None:
    member = session.get(TeamMember, (team.id, user.id))
    if member is not None:
        session.delete(member)
        session.flush()


def team_ids_of(session: Session, user_id: int) -> list[int]:
    query = select(TeamMember.team_id).where(TeamMember.user_id == user_id)
    return list(session.scalars(query.order_by(TeamMember.team_id)))


def member_ids(session: Session, team_id: int) -> list[int]:
    query = select(TeamMember.user_id).where(TeamMember.team_id == team_id)
    return list(session.scalars(query.order_by(TeamMember.user_id)))


def list_users(session: Session) -> list[User]:
    return list(session.scalars(select(User).order_by(User.id)))


def list_teams(session: Session) -> list[Team]:
    return list(session.scalars(select(Team).order_by(Team.id)))


def _address(email: str) -> str:
    try:
        return check_address(email).lower()
    except ValueError as exc:
        raise UserError(str(exc)) from exc
