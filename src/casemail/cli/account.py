"""casemail account add|list|show|edit|test|deactivate|default|detect"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Annotated, Any

import typer
from pydantic import ValidationError
from sqlalchemy import select

from casemail.accounts import autodetect, checks, service
from casemail.accounts.endpoint import TestOutcome
from casemail.accounts.public import to_public
from casemail.accounts.rules import AccountError
from casemail.accounts.schemas import AccountCreate, AccountPublic, AccountUpdate
from casemail.bootstrap import AppContext
from casemail.cli.common import context, emit_json, fail
from casemail.db.models import Account
from casemail.mailboxes.health import account_health
from casemail.mailboxes.runner import NotSyncable, progress_printer, reset_counter, sync_account
from casemail.mailboxes.takeover import take_over_mailbox

app = typer.Typer(help="Mail accounts: servers and credentials of real mailboxes.")
AsJson = Annotated[bool, typer.Option("--json", help="Print JSON.")]
DocFile = Annotated[
    Path | None, typer.Option("--file", "-f", help="Account document (JSON); prints text.")
]
JsonDoc = Annotated[
    Path | None,
    typer.Option("--json", help="Account document (JSON); prints the result as JSON too."),
]


def _read_document(path: Path | None, sets: list[str]) -> dict[str, Any]:
    document: dict[str, Any] = {}
    if path is not None:
        try:
            document = json.loads(path.read_text())
        except (OSError, json.JSONDecodeError) as exc:
            fail(f"cannot read {path}: {exc}")
    for item in sets:
        key, sep, raw = item.partition("=")
        if not sep:
            fail(f"--set wants KEY=VALUE (e.g. incoming.port=993), not {item!r}")
        try:
            value: Any = json.loads(raw)
        except json.JSONDecodeError:
            value = raw
        *parents, last = key.split(".")
        target = document
        for part in parents:
            target = target.setdefault(part, {})
        target[last] = value
    return document


def _ask_passwords(document: dict[str, Any], *, creating: bool) -> None:
    """Passwords are asked for, never taken from the command line (shell history, ps)."""
    if document.get("auth", "password") != "password":
        return
    incoming = document.get("incoming")
    if isinstance(incoming, dict) and creating and "password" not in incoming:
        incoming["password"] = typer.prompt("incoming password", hide_input=True, err=True)
    outgoing = document.get("outgoing")
    if not isinstance(outgoing, dict) or not creating or "password" in outgoing:
        return
    same = outgoing.get("same_credentials", isinstance(incoming, dict))
    if not same and outgoing.get("auth_required", True):
        outgoing["password"] = typer.prompt("outgoing password", hide_input=True, err=True)


def _validation_message(exc: ValidationError) -> str:
    return "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())


def _print(account: AccountPublic) -> None:
    state = "active" if account.active else "deactivated"
    default = " default" if account.is_default else ""
    typer.echo(f"#{account.id} {account.name} <{account.email}> [{account.role}{default}] {state}")
    for direction in ("incoming", "outgoing"):
        config = getattr(account, direction)
        test = getattr(account, f"last_test_{direction}")
        if config is None:
            continue
        kind = getattr(config, "protocol", "smtp")
        result = "not tested" if test.ok is None else ("OK" if test.ok else "FAILED")
        typer.echo(f"  {direction}: {kind} {config.host}:{config.port} {config.security}, {result}")
        if getattr(config, "initial_import", "all") != "all":
            typer.echo(f"    initial import: {config.initial_import.replace('_', ' ')}")
        if test.message:
            typer.echo(f"    last test: {test.message}")
    if account.oauth is not None:
        expires = account.oauth.expires_at
        expiry = f", token until {expires:%Y-%m-%d %H:%M} UTC" if expires else ""
        typer.echo(f"  oauth2: {account.oauth.state}{expiry}")
        if account.oauth.error:
            typer.secho(f"    {account.oauth.error}", fg=typer.colors.YELLOW)
    for warning in account.warnings:
        typer.secho(f"  warning: {warning}", fg=typer.colors.YELLOW)


def _public(ctx: AppContext, account: Account, warnings: list[str] | None = None) -> AccountPublic:
    public = to_public(account, service.stored_secrets(account, ctx.keys))
    public.warnings.extend(warnings or [])
    return public


@app.command("add")
def add(
    file: DocFile = None,
    json_file: JsonDoc = None,
    set_: Annotated[list[str] | None, typer.Option("--set", help="KEY=VALUE, dotted.")] = None,
) -> None:
    """Add an account from a JSON document (as the API takes) and/or --set values, e.g.
    --set incoming.initial_import=archive (or from-now) to import the mail already in the
    mailbox as closed cases, or to start from now."""
    as_json = json_file is not None
    document = _read_document(json_file or file, set_ or [])
    _ask_passwords(document, creating=True)
    try:
        data = AccountCreate.model_validate(document)
    except ValidationError as exc:
        fail(_validation_message(exc))
    ctx = context()
    allow = ctx.settings.private_hosts_allowed
    try:
        with ctx.db.write() as session:
            account, warnings = service.create_account(
                session, data, keys=ctx.keys, allow_private=allow
            )
            public = _public(ctx, account, warnings)
    except AccountError as exc:
        fail(f"{exc.field}: {exc}" if exc.field else str(exc))
    emit_json(public) if as_json else _print(public)


@app.command("edit")
def edit(
    account_id: int,
    file: DocFile = None,
    json_file: JsonDoc = None,
    set_: Annotated[list[str] | None, typer.Option("--set", help="KEY=VALUE, dotted.")] = None,
    password: Annotated[
        list[str] | None, typer.Option(help="Ask for a new password: incoming or outgoing.")
    ] = None,
    print_json: Annotated[bool, typer.Option("--print-json", help="Print JSON.")] = False,
) -> None:
    """Change an account: only the fields given change."""
    as_json = print_json or json_file is not None
    document = _read_document(json_file or file, set_ or [])
    for direction in password or []:
        if direction not in ("incoming", "outgoing"):
            fail("--password takes incoming or outgoing")
        new = typer.prompt(f"new {direction} password", hide_input=True, err=True)
        document.setdefault(direction, {})["password"] = new
    try:
        data = AccountUpdate.model_validate(document)
    except ValidationError as exc:
        fail(_validation_message(exc))
    ctx = context()
    try:
        with ctx.db.write() as session:
            account = _get(session, account_id)
            allow = ctx.settings.private_hosts_allowed
            warnings = service.update_account(
                session, account, data, keys=ctx.keys, allow_private=allow
            )
            public = _public(ctx, account, warnings)
    except AccountError as exc:
        fail(f"{exc.field}: {exc}" if exc.field else str(exc))
    emit_json(public) if as_json else _print(public)


def _get(session: Any, account_id: int) -> Account:
    account = session.get(Account, account_id)
    if account is None:
        fail(f"no account {account_id}")
    return account  # type: ignore[no-any-return]


@app.command("list")
def list_(
    all_: Annotated[bool, typer.Option("--all", help="Include deactivated accounts.")] = False,
    as_json: AsJson = False,
) -> None:
    """List accounts."""
    ctx = context()
    with ctx.db.read() as session:
        query = select(Account).order_by(Account.id)
        if not all_:
            query = query.where(Account.deactivated_at.is_(None))
        accounts = [_public(ctx, a) for a in session.scalars(query)]
    if as_json:
        emit_json(accounts)
        return
    if not accounts:
        typer.echo("no accounts yet: add one with `casemail account add --file account.json`")
    for account in accounts:
        _print(account)


@app.command("show")
def show(account_id: int, as_json: AsJson = False) -> None:
    """Show one account (never its passwords)."""
    ctx = context()
    with ctx.db.read() as session:
        public = _public(ctx, _get(session, account_id))
    emit_json(public) if as_json else _print(public)


def _change(account_id: int, action: str, as_json: bool) -> None:
    ctx = context()
    try:
        with ctx.db.write() as session:
            account = _get(session, account_id)
            if action == "deactivate":
                service.deactivate(session, account)
            else:
                service.set_default(session, account)
            public = _public(ctx, account)
    except AccountError as exc:
        fail(str(exc))
    emit_json(public) if as_json else _print(public)


@app.command("take-over")
def take_over(
    account_id: int,
    from_account: Annotated[int, typer.Option("--from", help="The account it replaces.")],
    as_json: AsJson = False,
) -> None:
    """Continue another account's mailbox (e.g. password to OAuth2) without fetching twice."""
    ctx = context()
    try:
        with ctx.db.write() as session:
            account = _get(session, account_id)
            done = take_over_mailbox(session, account, _get(session, from_account))
            public = _public(ctx, account)
    except AccountError as exc:
        fail(str(exc))
    if as_json:
        emit_json({"account": public, **done.__dict__})
        return
    typer.echo(
        f"account #{account_id} took over the mailbox of #{from_account}: {done.folders} "
        f"folder(s), {done.items} fetched message record(s), {done.channels} channel(s); "
        f"#{from_account} no longer fetches"
    )


@app.command("deactivate")
def deactivate(account_id: int, as_json: AsJson = False) -> None:
    """Deactivate an account (accounts with history are never deleted)."""
    _change(account_id, "deactivate", as_json)


@app.command("default")
def default(account_id: int, as_json: AsJson = False) -> None:
    """Make an account the default of its user or team, or the company's global/system one."""
    _change(account_id, "default", as_json)


def _report(outcome: TestOutcome) -> None:
    mark = "OK" if outcome.ok else "FAILED"
    colour = typer.colors.GREEN if outcome.ok else typer.colors.RED
    typer.secho(f"test {outcome.direction}: {mark}: {outcome.message}", fg=colour)
    if outcome.field and not outcome.ok:
        typer.echo(f"  field to fix: {outcome.field}")


@app.command("test")
def run_tests(
    account_id: int,
    incoming: Annotated[bool, typer.Option(help="Test the incoming server.")] = True,
    outgoing: Annotated[bool, typer.Option(help="Test the outgoing server (needs --to).")] = True,
    to: Annotated[str | None, typer.Option(help="Recipient of the test message.")] = None,
    as_json: AsJson = False,
) -> None:
    """Test incoming and/or outgoing settings; the result is stored on the account."""
    ctx = context()
    with ctx.db.read() as session:
        account = _get(session, account_id)
        has = {d: bool(account.settings.get(d)) for d in ("incoming", "outgoing")}
    outcomes: list[TestOutcome] = []
    try:
        if incoming and has["incoming"]:
            outcomes.append(asyncio.run(checks.test_incoming(ctx, account_id)))
        if outgoing and has["outgoing"]:
            if to is None:
                fail("test outgoing sends a message: give --to ADDRESS (or --no-outgoing)")
            outcomes.append(asyncio.run(checks.test_outgoing(ctx, account_id, to=to)))
    except AccountError as exc:
        fail(str(exc))
    if not outcomes:
        fail("nothing to test: the account has no server for the direction asked")
    if as_json:
        emit_json([{**o.__dict__} for o in outcomes])
    else:
        for outcome in outcomes:
            _report(outcome)
    if not all(o.ok for o in outcomes):
        raise typer.Exit(2)


@app.command("detect")
def detect(
    address: str,
    probe: Annotated[bool, typer.Option(help="Probe common host names and ports.")] = True,
    as_json: AsJson = False,
) -> None:
    """Find the server settings for an email address."""
    ctx = context()
    try:
        result = asyncio.run(autodetect.detect_for_api(ctx, address, probe=probe))
    except ValueError as exc:  # InvalidEmailAddress, or a bad DNS server setting
        fail(f"{address}: {exc}")
    if as_json:
        emit_json(result)
        return
    _print_detection(result)


def _print_detection(result: dict[str, Any]) -> None:
    typer.echo(f"{result['email']}: found by {result['source']}, confidence {result['confidence']}")
    for direction in ("incoming", "outgoing"):
        server = result.get(direction)
        if server:
            typer.echo(
                f"  {direction}: {server['protocol']} {server['host']}:{server['port']} "
                f"{server['security']}, user {server['username']}"
            )
    typer.echo(f"  authentication: {', '.join(result.get('auth_types') or [])}")
    for note in result.get("notes") or []:
        typer.echo(f"  note: {note}")
    for entry in result.get("trail") or []:
        detail = f" ({entry['detail']})" if entry.get("detail") else ""
        typer.echo(f"    tried {entry['step']} {entry['target']}: {entry['outcome']}{detail}")


@app.command("sync")
def sync(
    account_id: int,
    full: Annotated[
        bool, typer.Option(help="Reset the mailbox counter first: download everything again.")
    ] = False,
    as_json: AsJson = False,
) -> None:
    """Fetch the account's mailbox now, with a progress bar; mail becomes cases."""
    ctx = context()
    try:
        if full:
            reset_counter(ctx.db, account_id)
        printer = None if as_json else progress_printer()
        report = sync_account(ctx, account_id, on_progress=printer)
    except NotSyncable as exc:
        fail(str(exc))
    except Exception as exc:  # noqa: BLE001 - recorded on the account; shown in words
        fail(f"sync of account {account_id} failed: {exc}")
    if as_json:
        emit_json(report.__dict__)
        return
    typer.echo(
        f"account {account_id}: {report.stored} new, {report.duplicates} already stored, "
        f"{report.quarantined} quarantined, {report.removed_from_server} removed from the server"
    )
    if report.archived:
        typer.echo(f"  {report.archived} imported as archive (closed cases, nothing sent)")
    if report.skipped:
        typer.echo(
            f"  {report.skipped} already in the mailbox left alone (initial import from now)"
        )
    for folder in report.uidvalidity_changed:
        typer.secho(f"  {folder}: UIDVALIDITY changed; the folder was read again", fg="yellow")


@app.command("reset-counter")
def reset_counter_command(account_id: int) -> None:
    """Forget what was fetched, so the next sync downloads everything again (nothing that is
    already stored is stored twice), including mail an initial import "from now" left
    alone: it becomes normal cases."""
    ctx = context()
    with ctx.db.read() as session:
        _get(session, account_id)
    forgotten = reset_counter(ctx.db, account_id)
    typer.echo(f"account {account_id}: forgot {forgotten} fetched message(s); sync to re-read")


@app.command("health")
def health(account_id: int, as_json: AsJson = False) -> None:
    """Inbound health: state, last success, last error, messages waiting, folders."""
    ctx = context()
    found = account_health(ctx.db, account_id)
    if found is None:
        fail(f"no account {account_id}")
    if as_json:
        emit_json(found)
        return
    typer.echo(f"account {account_id}: {found.state}, last success {found.last_success_at or '-'}")
    if found.last_error:
        typer.echo(f"  last error ({found.last_error_at}): {found.last_error}")
    typer.echo(f"  messages waiting: {found.messages_waiting}")
    for folder in found.folders:
        total = "?" if folder.messages_total is None else folder.messages_total
        typer.echo(f"  {folder.folder}: {folder.messages_done}/{total}, last UID {folder.last_uid}")
