"""casemail user add|list and casemail team add|list|add-member"""

from __future__ import annotations

from typing import Annotated, Literal

import typer

from casemail.api.people import team_public, user_public
from casemail.cli.common import context, emit_json, fail
from casemail.users import service
from casemail.users.service import UserError

users = typer.Typer(help="Users (admins and agents).", no_args_is_help=True)
teams = typer.Typer(help="Teams.", no_args_is_help=True)
AsJson = Annotated[bool, typer.Option("--json", help="Print JSON.")]


@users.command("add")
def user_add(
    name: Annotated[str, typer.Option(help="Full name.")],
    email: Annotated[str, typer.Option(help="Email address (unique).")],
    role: Annotated[str, typer.Option(help="admin or agent.")] = "agent",
    team: Annotated[list[str] | None, typer.Option(help="Team name or id (repeatable).")] = None,
    as_json: AsJson = False,
) -> None:
    """Add a user."""
    if role not in ("admin", "agent"):
        fail("--role is admin or agent")
    chosen: Literal["admin", "agent"] = "admin" if role == "admin" else "agent"
    ctx = context()
    try:
        with ctx.db.write() as session:
            user = service.create_user(session, name=name, email=email, role=chosen)
            for ref in team or []:
                service.add_member(session, service.find_team(session, ref), user)
            public = user_public(session, user)
    except UserError as exc:
        fail(str(exc))
    if as_json:
        emit_json(public)
    else:
        typer.echo(f"user {public.id} added: {public.name} <{public.email}> ({public.role})")


@users.command("list")
def user_list(as_json: AsJson = False) -> None:
    """List users."""
    ctx = context()
    with ctx.db.read() as session:
        rows = [user_public(session, u) for u in service.list_users(session)]
    if as_json:
        emit_json(rows)
        return
    for u in rows:
        teams_text = ", ".join(map(str, u.team_ids)) or "-"
        typer.echo(f"{u.id:>4}  {u.email:<40} {u.role:<6} {u.name}  teams: {teams_text}")


@teams.command("add")
def team_add(
    name: str,
    member: Annotated[list[str] | None, typer.Option(help="User email or id (repeatable).")] = None,
    as_json: AsJson = False,
) -> None:
    """Add a team."""
    ctx = context()
    try:
        with ctx.db.write() as session:
            team = service.create_team(session, name=name)
            for ref in member or []:
                service.add_member(session, team, service.find_user(session, ref))
            public = team_public(session, team)
    except UserError as exc:
        fail(str(exc))
    if as_json:
        emit_json(public)
    else:
        typer.echo(f"team {public.id} added: {public.name}")


@teams.command("add-member")
def team_add_member(team: str, user: str) -> None:
    """Put a user in a team."""
    ctx = context()
    try:
        with ctx.db.write() as session:
            service.add_member(
                session, service.find_team(session, team), service.find_user(session, user)
            )
    except UserError as exc:
        fail(str(exc))
    typer.echo(f"{user} is now in team {team}")


@teams.command("list")
def team_list(as_json: AsJson = False) -> None:
    """List teams."""
    ctx = context()
    with ctx.db.read() as session:
        rows = [team_public(session, t) for t in service.list_teams(session)]
    if as_json:
        emit_json(rows)
        return
    for t in rows:
        typer.echo(f"{t.id:>4}  {t.name}  members: {', '.join(map(str, t.member_ids)) or '-'}")
