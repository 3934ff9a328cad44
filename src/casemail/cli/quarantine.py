"""casemail quarantine list|show|reprocess|assign|discard"""

from __future__ import annotations

from typing import Annotated

import typer

from casemail.api.schemas import QuarantinePublic
from casemail.cases import service as cases
from casemail.cli.common import context, emit_json, fail
from casemail.db.models import InboundReceipt, QuarantineEntry
from casemail.ingest import quarantine_actions as actions
from casemail.ingest.preview import preview
from casemail.ingest.types import IngestResult

app = typer.Typer(help="Mail that made no case: look, reprocess, assign or discard.")
AsJson = Annotated[bool, typer.Option("--json", help="Print JSON.")]


@app.command("list")
def list_(
    state: Annotated[str, typer.Option(help="held, released, discarded or all.")] = "held",
    as_json: AsJson = False,
) -> None:
    ctx = context()
    with ctx.db.read() as session:
        chosen = None if state == "all" else state
        rows = [
            QuarantinePublic.model_validate(e)
            for e in cases.list_quarantine(session, state=chosen, limit=1000, offset=0)
        ]
    if as_json:
        emit_json(rows)
        return
    if not rows:
        typer.echo(f"nothing {state} in quarantine")
    for e in rows:
        typer.echo(f"#{e.id:<5} {e.state:<9} {e.created_at:%Y-%m-%d %H:%M}  {e.reason}")


@app.command("show")
def show(entry_id: int, as_json: AsJson = False) -> None:
    """The entry and a preview of the message (sender, subject, start of the text)."""
    ctx = context()
    with ctx.db.read() as session:
        entry = session.get(QuarantineEntry, entry_id)
        if entry is None:
            fail(f"no quarantine entry {entry_id}")
        shown = preview(session, session.get_one(InboundReceipt, entry.inbound_id))
        public = QuarantinePublic.model_validate(entry)
    if as_json:
        emit_json({**public.model_dump(mode="json"), "preview": shown.__dict__})
        return
    typer.echo(f"#{public.id} {public.state}: {public.reason}")
    typer.echo(f"from: {shown.sender or '(none)'}\nsubject: {shown.subject}\n")
    typer.echo(shown.excerpt)


@app.command("reprocess")
def reprocess(entry_id: int) -> None:
    """Through the pipeline again, with today's rules and contacts."""
    _release(entry_id, None)


@app.command("assign")
def assign(
    entry_id: int, case_id: Annotated[int, typer.Argument(help="The case it joins.")]
) -> None:
    """Append the message to a case, whatever the rules say."""
    _release(entry_id, case_id)


@app.command("discard")
def discard(entry_id: int) -> None:
    ctx = context()
    try:
        with ctx.db.write() as session:
            actions.discard(session, entry_id)
    except actions.QuarantineError as exc:
        fail(str(exc))
    typer.echo(f"quarantine entry {entry_id} discarded")


def _release(entry_id: int, case_id: int | None) -> None:
    ctx = context()
    try:
        with ctx.db.write() as session:
            released = actions.release(session, entry_id, assign_case_id=case_id)
    except actions.QuarantineError as exc:
        fail(str(exc))
    typer.echo(_words(entry_id, actions.process_released(ctx.db, released, ctx.ingest_options)))


def _words(entry_id: int, result: IngestResult) -> str:
    if result.case_id is not None:
        return f"quarantine entry {entry_id}: {result.outcome}, case #{result.case_id}"
    return f"quarantine entry {entry_id}: {result.outcome} ({result.reason or 'no reason given'})"
