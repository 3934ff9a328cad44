"""The ``casemail`` command."""

from __future__ import annotations

import asyncio
import signal
from typing import Annotated

import typer

from casemail.auth.tenancy import DEFAULT_COMPANY_ID
from casemail.auth.tokens import create_token
from casemail.cli import account, case, channel, keys, oauth, outbox, people, quarantine
from casemail.cli.common import context, emit_json, fail
from casemail.cli.inject import inject
from casemail.db.migrate import current_revision
from casemail.users.companies import first_admin
from casemail.users.service import UserError, find_user

app = typer.Typer(
    help="casemail: mailboxes in, cases out. Settings come from CASEMAIL_* variables.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
app.add_typer(channel.app, name="channel")
app.add_typer(case.app, name="case")
app.add_typer(account.app, name="account")
app.add_typer(people.users, name="user")
app.add_typer(people.teams, name="team")
app.add_typer(people.company_app, name="company")
app.add_typer(quarantine.app, name="quarantine")
app.add_typer(keys.app, name="keys")
app.add_typer(outbox.app, name="outbox")
app.add_typer(oauth.app, name="oauth")
app.command("inject")(inject)
app.command("send")(outbox.send)
token_app = typer.Typer(help="API tokens.", no_args_is_help=True)
db_app = typer.Typer(help="Database maintenance.", no_args_is_help=True)
app.add_typer(token_app, name="token")
app.add_typer(db_app, name="db")


@app.command()
def serve(
    http_port: Annotated[int | None, typer.Option(help="HTTP port [default: 8025].")] = None,
    smtp_port: Annotated[int | None, typer.Option(help="SMTP port [default: 2525].")] = None,
    smtps_port: Annotated[int | None, typer.Option(help="Implicit-TLS SMTP port.")] = None,
    http_host: Annotated[str | None, typer.Option(help="HTTP bind address.")] = None,
    smtp_host: Annotated[str | None, typer.Option(help="SMTP bind address.")] = None,
    workers: Annotated[bool, typer.Option(help="Run background workers.")] = True,
) -> None:
    """Run the API, the SMTP listener and the workers in one process."""
    from casemail.bootstrap import configure_logging
    from casemail.service import serve as run

    ctx = context(
        http_port=http_port,
        smtp_port=smtp_port,
        smtps_port=smtps_port,
        http_host=http_host,
        smtp_host=smtp_host,
        workers=workers,
    )
    configure_logging(ctx.settings.log_level)
    asyncio.run(run(ctx))


@app.command()
def worker(
    concurrency: Annotated[
        int | None,
        typer.Option(min=1, max=256, help="Mailbox syncs at once [default: 4]."),
    ] = None,
) -> None:
    """Run only the background workers (mailbox polling, retries, purges), without the API
    and the SMTP listener: for more worker processes beside `casemail serve --no-workers`."""
    from casemail.bootstrap import configure_logging
    from casemail.workers.supervisor import run_workers

    ctx = context(worker_concurrency=concurrency)
    configure_logging(ctx.settings.log_level)

    async def main() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        await run_workers(ctx, stop)

    asyncio.run(main())


@token_app.command("create")
def token_create(
    name: Annotated[str, typer.Option(help="What the token is for.")] = "cli",
    user: Annotated[
        str | None,
        typer.Option(help="Email or id of the user it acts as; default: the first admin."),
    ] = None,
) -> None:
    """Create an API token and print it (it is shown only this once). It acts as its user:
    their role, their company's data."""
    ctx = context()
    try:
        with ctx.db.write() as session:
            owner = find_user(session, user) if user else first_admin(session, DEFAULT_COMPANY_ID)
            if owner is None:
                fail(
                    "there is no admin yet: add one with `casemail user add --role admin "
                    "--name NAME --email ADDRESS`, or name a user with --user"
                )
            if not owner.active:
                fail(f"user {owner.email} is inactive: their tokens would not work")
            token = create_token(session, name=name, user_id=owner.id)
    except UserError as exc:
        fail(str(exc))
    typer.echo(token)


@app.command()
def status(
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """The worker processes (running, stopped, or dead: no heartbeat for 30 s) and the work
    waiting for them: outbox depth and lag, messages not yet processed, account states."""
    from casemail.workers.status import read_status

    found = read_status(context().db)
    if as_json:
        emit_json(found)
        return
    typer.echo(f"workers: {sum(w.state == 'running' for w in found.workers)} running")
    for w in found.workers:
        typer.echo(
            f"  {w.id[:8]}  {w.state:<8} {w.kind:<6} {w.host}:{w.pid}  {w.mailboxes} mailboxes"
            f"  concurrency {w.concurrency}  heartbeat {w.heartbeat_age_seconds:.0f} s ago"
        )
    typer.echo(
        f"outbox: {found.outbox.waiting} waiting, oldest {found.outbox.oldest_age_seconds:.0f} s"
    )
    typer.echo(
        f"inbound: {found.inbound.waiting} not yet processed, oldest "
        f"{found.inbound.oldest_age_seconds:.0f} s"
    )
    states = ", ".join(f"{n} {s}" for s, n in sorted(found.accounts_by_state.items())) or "none"
    typer.echo(f"mailboxes: {states}")
    typer.echo(f"quarantine: {found.quarantine_held} held")


@db_app.command("upgrade")
def db_upgrade() -> None:
    """Apply pending migrations (serve does this on start too)."""
    ctx = context()
    typer.echo(f"database at revision {current_revision(ctx.db)}")


def main() -> None:
    app()
