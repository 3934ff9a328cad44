"""casemail send | casemail outbox list|reset|retry|cancel|suspend|resume"""

from __future__ import annotations

import mimetypes
from datetime import timedelta
from pathlib import Path
from typing import Annotated

import typer

from casemail.api.outbox import OutboxPublic
from casemail.cli.common import context, emit_json, fail
from casemail.outbound import service as outbox
from casemail.outbound.compose import OutgoingAttachment
from casemail.outbound.service import CaseMail, NotFound, OutboundError

app = typer.Typer(help="The outbox: outgoing mail and its sending status.", no_args_is_help=True)
JsonFlag = Annotated[bool, typer.Option("--json", help="Print JSON.")]


def _line(entry: OutboxPublic) -> str:
    case = f"case #{entry.case_id}" if entry.case_id else "no case"
    where = f"{entry.attempts} attempt(s)"
    error = f"  {entry.last_error}" if entry.last_error else ""
    duplicate = "  (maybe sent twice)" if entry.maybe_duplicate else ""
    return f"{entry.id:>5}  {entry.state:<9} {entry.kind:<15} {case:<11} {where}{error}{duplicate}"


def send(
    case_id: Annotated[int, typer.Argument(help="The case to send from.")],
    to: Annotated[list[str], typer.Option(help="Recipient (repeatable).")],
    text: Annotated[str | None, typer.Option(help="Text body.")] = None,
    text_file: Annotated[Path | None, typer.Option(help="Text body from a file.")] = None,
    html_file: Annotated[Path | None, typer.Option(help="HTML body from a file.")] = None,
    subject: Annotated[str | None, typer.Option(help="Default: Re: the case's subject.")] = None,
    cc: Annotated[list[str] | None, typer.Option(help="Cc (repeatable).")] = None,
    bcc: Annotated[list[str] | None, typer.Option(help="Bcc (repeatable).")] = None,
    attach: Annotated[list[Path] | None, typer.Option(help="File to attach (repeatable).")] = None,
    account: Annotated[int | None, typer.Option(help="Sending account.")] = None,
    user: Annotated[int | None, typer.Option(help="The agent sending (their account).")] = None,
    as_json: JsonFlag = False,
) -> None:
    """Send mail from a case: it is queued in the outbox and the workers deliver it."""
    ctx = context()
    try:
        mail = CaseMail(
            to=tuple(to),
            cc=tuple(cc or ()),
            bcc=tuple(bcc or ()),
            subject=subject,
            text=text if text is not None else _read(text_file),
            html=_read(html_file),
            attachments=tuple(_attachment(p) for p in attach or ()),
            account_id=account,
            user_id=user,
        )
        give_up = timedelta(hours=ctx.settings.outbox_give_up_hours)
        with ctx.db.write() as session:
            entry = OutboxPublic.model_validate(
                outbox.send_from_case(session, case_id, mail, give_up_after=give_up)
            )
    except (NotFound, OutboundError, OSError) as exc:
        fail(str(exc))
    if as_json:
        emit_json(entry)
    else:
        typer.echo(f"queued as outbox #{entry.id} ({entry.message_id})")


def _read(path: Path | None) -> str | None:
    return path.read_text() if path is not None else None


def _attachment(path: Path) -> OutgoingAttachment:
    kind = mimetypes.guess_type(path.name)[0] or "application/octet-stream"
    return OutgoingAttachment(path.name, kind, path.read_bytes())


@app.command("list")
def list_(
    state: Annotated[str | None, typer.Option(help="ready|sending|sent|error|cancelled")] = None,
    account: Annotated[int | None, typer.Option(help="Only this account's mail.")] = None,
    case: Annotated[int | None, typer.Option(help="Only this case's mail.")] = None,
    limit: Annotated[int, typer.Option(min=1, max=500)] = 50,
    as_json: JsonFlag = False,
) -> None:
    """List outgoing mail, newest first."""
    ctx = context()
    with ctx.db.read() as session:
        rows = [
            OutboxPublic.model_validate(e)
            for e in outbox.list_outbox(
                session, state=state, account_id=account, case_id=case, limit=limit
            )
        ]
    if as_json:
        emit_json(rows)
        return
    if not rows:
        typer.echo("the outbox is empty" if state is None else f"nothing in state {state}")
    for row in rows:
        typer.echo(_line(row))


def _act(action: str, outbox_id: int, as_json: bool) -> None:
    ctx = context()
    try:
        with ctx.db.write() as session:
            if action == "reset":
                entry = outbox.reset(session, outbox_id)
            elif action == "retry":
                give_up = timedelta(hours=ctx.settings.outbox_give_up_hours)
                entry = outbox.retry(session, outbox_id, give_up_after=give_up)
            else:
                entry = outbox.cancel(session, outbox_id)
            public = OutboxPublic.model_validate(entry)
    except (NotFound, OutboundError) as exc:
        fail(str(exc))
    if as_json:
        emit_json(public)
    else:
        typer.echo(_line(public))


@app.command("reset")
def reset(outbox_id: int, as_json: JsonFlag = False) -> None:
    """Reset email sending status: a message stuck in `sending` goes back to `ready`."""
    _act("reset", outbox_id, as_json)


@app.command("retry")
def retry(outbox_id: int, as_json: JsonFlag = False) -> None:
    """Clear email error status: send an `error` (or waiting) message again now."""
    _act("retry", outbox_id, as_json)


@app.command("cancel")
def cancel(outbox_id: int, as_json: JsonFlag = False) -> None:
    """Cancel a message that was not sent."""
    _act("cancel", outbox_id, as_json)


def _suspend(account: int | None, on: bool) -> None:
    ctx = context()
    try:
        with ctx.db.write() as session:
            outbox.suspend(session, account_id=account, on=on)
    except NotFound as exc:
        fail(str(exc))
    what = f"account {account}" if account is not None else "all sending"
    typer.echo(f"{what}: {'suspended' if on else 'resumed'}")


@app.command("suspend")
def suspend(
    account: Annotated[int | None, typer.Option(help="Only this account.")] = None,
) -> None:
    """Stop sending; queued mail waits in `ready`."""
    _suspend(account, True)


@app.command("resume")
def resume(
    account: Annotated[int | None, typer.Option(help="Only this account.")] = None,
) -> None:
    """Start sending again."""
    _suspend(account, False)
