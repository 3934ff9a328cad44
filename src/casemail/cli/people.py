"""casemail user add|list|password, team add|list|add-member, company add|list"""

from __future__ import annotations

import sys
from typing import Annotated, Literal

import typer

from casemail.api.people import team_public, user_public
from casemail.cli.common import context, emit_json, fail
from casemail.users import companies, service
from casemail.users.service import UserError

users = typer.Typer(help="Users (admins and agents).", no_args_is_help=True)
teams = typer.Typer(help="Teams.", no_args_is_help=True)
company_app = typer.Typer(help="Companies (each with its own users, accounts and cases).")
AsJson = Annotated[bool, typer.Option("--json", help="Print JSON.")]
PasswordStdin = Annotated[
    bool,
    typer.Option(
        "--password-stdin",
        help="Read the password from the first line of standard input (for scripts).",
    ),
]


def _read_password(from_stdin: bool) -> str:
    """The password from stdin, or typed twice at a hidden prompt; never from an option,
    which would leave it in the shell history and the process list."""
    if from_stdin:
        return sys.stdin.readline().rstrip("\r\n")
    typed: str = typer.prompt("Password", hide_input=True, confirmation_prompt=True)
    return typed


@users.command("add")
def user_add(
    name: Annotated[str, typer.Option(help="Full name.")],
    email: Annotated[str, typer.Option(help="Email address (unique).")],
    role: Annotated[str, typer.Option(help="admin or agent.")] = "agent",
    team: Annotated[list[str] | None, typer.Option(help="Team name or id (repeatable).")] = None,
    company: Annotated[
        str | None, typer.Option(help="Company name or id; default: the first one.")
    ] = None,
    password_stdin: PasswordStdin = False,
    as_json: AsJson = False,
) -> None:
    """Add a user. With --password-stdin they can sign in to the web app at once."""
    if role not in ("admin", "agent"):
        fail("--role is admin or agent")
    chosen: Literal["admin", "agent"] = "admin" if role == "admin" else "agent"
    password = _read_password(True) if password_stdin else None
    ctx = context()
    try:
        with ctx.db.write() as session:
            company_id = companies.find_company(session, company).id if company else None
            user = service.create_user(
                session,
                name=name,
                email=email,
                role=chosen,
                company_id=company_id,
                password=password,
            )
            for ref in team or []:
                service.add_member(session, service.find_team(session, ref), user)
            public = user_public(session, user)
    except UserError as exc:
        fail(str(exc))
    if as_json:
        emit_json(public)
    else:
        typer.echo(f"user {public.id} added: {public.name} <{public.email}> ({public.role})")


@users.command("password")
def user_password(
    user: Annotated[str, typer.Argument(help="Email or id.")],
    password_stdin: PasswordStdin = False,
) -> None:
    """Set a user's password for the web app (asked for twice, hidden)."""
    password = _read_password(password_stdin)
    ctx = context()
    try:
        with ctx.db.write() as session:
            found = service.find_user(session, user)
            service.set_password(found, password)
            email = found.email
    except UserError as exc:
        fail(str(exc))
    typer.echo(f"password set for {email}")


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


@company_app.command("add")
def company_add(name: str, as_json: AsJson = False) -> None:
    """Add a company; then give it an admin with `casemail user add --company NAME`."""
    ctx = context()
    try:
        with ctx.db.write() as session:
            company = companies.add_company(session, name)
            found = {"id": company.id, "name": company.name}
    except UserError as exc:
        fail(str(exc))
    if as_json:
        emit_json(found)
    else:
        typer.echo(f"company {found['id']} added: {found['name']}")


@company_app.command("list")
def company_list(as_json: AsJson = False) -> None:
    ctx = context()
    with ctx.db.read() as session:
        rows = [{"id": c.id, "name": c.name} for c in companies.list_companies(session)]
    if as_json:
        emit_json(rows)
        return
    for row in rows:
        typer.echo(f"{row['id']:>4}  {row['name']}")
