"""/api/v1/users and /api/v1/teams: just enough for personal and team accounts."""

from __future__ import annotations

from fastapi import APIRouter, Depends, status
from sqlalchemy.orm import Session

from casemail.api.deps import ReadSession, WriteSession, require_token
from casemail.api.schemas import ErrorBody
from casemail.db.models import Team, User
from casemail.users import service
from casemail.users.schemas import MemberAdd, TeamCreate, TeamPublic, UserCreate, UserPublic

router = APIRouter(
    prefix="/api/v1",
    dependencies=[Depends(require_token)],
    responses={
        401: {"model": ErrorBody, "description": "Missing or invalid API token"},
        404: {"model": ErrorBody, "description": "No such user or team"},
        409: {"model": ErrorBody, "description": "Exists already"},
    },
)


def user_public(session: Session, user: User) -> UserPublic:
    return UserPublic(
        id=user.id,
        name=user.name,
        email=user.email,
        role=user.role,
        active=user.active,
        team_ids=service.team_ids_of(session, user.id),
    )


def team_public(session: Session, team: Team) -> TeamPublic:
    return TeamPublic(id=team.id, name=team.name, member_ids=service.member_ids(session, team.id))


@router.get("/users", response_model=list[UserPublic], tags=["users"])
def list_users(session: ReadSession) -> list[UserPublic]:
    return [user_public(session, u) for u in service.list_users(session)]


@router.post(
    "/users", response_model=UserPublic, status_code=status.HTTP_201_CREATED, tags=["users"]
)
def create_user(body: UserCreate, session: WriteSession) -> UserPublic:
    user = service.create_user(session, name=body.name, email=body.email, role=body.role)
    for ref in body.teams:
        service.add_member(session, service.find_team(session, ref), user)
    return user_public(session, user)


@router.get("/users/{user_id}", response_model=UserPublic, tags=["users"])
def get_user(user_id: int, session: ReadSession) -> UserPublic:
    return user_public(session, service.find_user(session, user_id))


@router.get("/teams", response_model=list[TeamPublic], tags=["teams"])
def list_teams(session: ReadSession) -> list[TeamPublic]:
    return [team_public(session, t) for t in service.list_teams(session)]


@router.post(
    "/teams", response_model=TeamPublic, status_code=status.HTTP_201_CREATED, tags=["teams"]
)
def create_team(body: TeamCreate, session: WriteSession) -> TeamPublic:
    team = service.create_team(session, name=body.name)
    for ref in body.members:
        service.add_member(session, team, service.find_user(session, ref))
    return team_public(session, team)


@router.post("/teams/{team_id}/members", response_model=TeamPublic, tags=["teams"])
def add_member(team_id: int, body: MemberAdd, session: WriteSession) -> TeamPublic:
    team = service.find_team(session, team_id)
    service.add_member(session, team, service.find_user(session, body.user))
    return team_public(session, team)


@router.delete("/teams/{team_id}/members/{user_id}", response_model=TeamPublic, tags=["teams"])
def remove_member(team_id: int, user_id: int, session: WriteSession) -> TeamPublic:
    team = service.find_team(session, team_id)
    service.remove_member(session, team, service.find_user(session, user_id))
    return team_public(session, team)
