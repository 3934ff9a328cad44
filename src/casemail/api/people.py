"""/api/v1/users, /api/v1/teams, /api/v1/me and /api/v1/tokens.

Everyone in a company may read its users and teams (an agent picks a colleague to assign a
case to); only admins change them. Each user manages their own API tokens; an admin may
revoke any token of their company.
"""

from __future__ import annotations

from fastapi import APIRouter, Depends, status
from sqlalchemy import select
from sqlalchemy.orm import Session

from casemail.api.deps import Caller, ReadSession, WriteSession, require_admin, require_principal
from casemail.api.schemas import ErrorBody
from casemail.auth.tokens import issue_token
from casemail.db.models import ApiToken, Team, User
from casemail.db.types import utcnow
from casemail.users import service
from casemail.users.schemas import (
    MemberAdd,
    TeamCreate,
    TeamPublic,
    TokenCreate,
    TokenCreated,
    TokenPublic,
    UserCreate,
    UserPublic,
    UserUpdate,
)

router = APIRouter(
    prefix="/api/v1",
    dependencies=[Depends(require_principal)],
    responses={
        401: {"model": ErrorBody, "description": "Missing or invalid API token"},
        403: {"model": ErrorBody, "description": "Only an admin may do this"},
        404: {"model": ErrorBody, "description": "No such user, team or token"},
        409: {"model": ErrorBody, "description": "Exists already"},
    },
)
ADMIN = [Depends(require_admin)]


def user_public(session: Session, user: User) -> UserPublic:
    return UserPublic(
        id=user.id,
        company_id=user.company_id,
        name=user.name,
        email=user.email,
        role=user.role,
        active=user.active,
        team_ids=service.team_ids_of(session, user.id),
        can_sign_in=user.password_hash is not None,
    )


def team_public(session: Session, team: Team) -> TeamPublic:
    return TeamPublic(id=team.id, name=team.name, member_ids=service.member_ids(session, team.id))


@router.get("/me", response_model=UserPublic, tags=["users"])
def get_me(caller: Caller, session: ReadSession) -> UserPublic:
    """The user this token (or web session) acts as."""
    return user_public(session, service.find_user(session, caller.user_id))


@router.get("/users", response_model=list[UserPublic], tags=["users"])
def list_users(session: ReadSession) -> list[UserPublic]:
    return [user_public(session, u) for u in service.list_users(session)]


@router.post(
    "/users",
    response_model=UserPublic,
    status_code=status.HTTP_201_CREATED,
    tags=["users"],
    dependencies=ADMIN,
)
def create_user(body: UserCreate, session: WriteSession) -> UserPublic:
    user = service.create_user(
        session, name=body.name, email=body.email, role=body.role, password=body.password
    )
    for ref in body.teams:
        service.add_member(session, service.find_team(session, ref), user)
    return user_public(session, user)


@router.get("/users/{user_id}", response_model=UserPublic, tags=["users"])
def get_user(user_id: int, session: ReadSession) -> UserPublic:
    return user_public(session, service.find_user(session, user_id))


@router.patch("/users/{user_id}", response_model=UserPublic, tags=["users"], dependencies=ADMIN)
def update_user(
    user_id: int, body: UserUpdate, session: WriteSession, caller: Caller
) -> UserPublic:
    """Rename, change the role, deactivate (their tokens and sessions stop working) or set
    the password. An admin cannot demote or deactivate themselves: a company always keeps
    an admin who can undo a mistake."""
    user = service.find_user(session, user_id)
    service.update_user(session, user, body, acting_user_id=caller.user_id)
    return user_public(session, user)


@router.get("/teams", response_model=list[TeamPublic], tags=["teams"])
def list_teams(session: ReadSession) -> list[TeamPublic]:
    return [team_public(session, t) for t in service.list_teams(session)]


@router.post(
    "/teams",
    response_model=TeamPublic,
    status_code=status.HTTP_201_CREATED,
    tags=["teams"],
    dependencies=ADMIN,
)
def create_team(body: TeamCreate, session: WriteSession) -> TeamPublic:
    team = service.create_team(session, name=body.name)
    for ref in body.members:
        service.add_member(session, team, service.find_user(session, ref))
    return team_public(session, team)


@router.post(
    "/teams/{team_id}/members", response_model=TeamPublic, tags=["teams"], dependencies=ADMIN
)
def add_member(team_id: int, body: MemberAdd, session: WriteSession) -> TeamPublic:
    team = service.find_team(session, team_id)
    service.add_member(session, team, service.find_user(session, body.user))
    return team_public(session, team)


@router.delete(
    "/teams/{team_id}/members/{user_id}",
    response_model=TeamPublic,
    tags=["teams"],
    dependencies=ADMIN,
)
def remove_member(team_id: int, user_id: int, session: WriteSession) -> TeamPublic:
    team = service.find_team(session, team_id)
    service.remove_member(session, team, service.find_user(session, user_id))
    return team_public(session, team)


def _token_public(token: ApiToken) -> TokenPublic:
    assert token.user_id is not None
    return TokenPublic(
        id=token.id,
        name=token.name,
        user_id=token.user_id,
        created_at=token.created_at,
        last_used_at=token.last_used_at,
        revoked_at=token.revoked_at,
    )


@router.get("/tokens", response_model=list[TokenPublic], tags=["tokens"])
def list_tokens(caller: Caller, session: ReadSession) -> list[TokenPublic]:
    """Your API tokens (an admin: every token of the company), never the tokens themselves."""
    query = select(ApiToken).order_by(ApiToken.id)
    if not caller.is_admin:
        query = query.where(ApiToken.user_id == caller.user_id)
    return [_token_public(t) for t in session.scalars(query)]


@router.post(
    "/tokens", response_model=TokenCreated, status_code=status.HTTP_201_CREATED, tags=["tokens"]
)
def post_token(body: TokenCreate, caller: Caller, session: WriteSession) -> TokenCreated:
    """A new API token acting as you; it is in this answer only."""
    secret, row = issue_token(session, name=body.name, user_id=caller.user_id)
    return TokenCreated(**_token_public(row).model_dump(), token=secret)


@router.delete("/tokens/{token_id}", response_model=TokenPublic, tags=["tokens"])
def revoke_token(token_id: int, caller: Caller, session: WriteSession) -> TokenPublic:
    token = session.get(ApiToken, token_id)
    if token is None or (token.user_id != caller.user_id and not caller.is_admin):
        raise service.UserError(f"no token {token_id}", status=404)
    if token.revoked_at is None:
        token.revoked_at = utcnow()
    return _token_public(token)
