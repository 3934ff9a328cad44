"""casemail inject --channel ADDR FILE..."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from casemail.channels.service import find_channel
from casemail.cli.common import context, emit_json, fail
from casemail.ingest import Source, ingest_raw
from casemail.ingest.files import read_messages


def _describe(label: str, outcome: Any) -> str:
    if outcome.case_id is not None:
        return f"{label}: {outcome.outcome} case #{outcome.case_id}"
    if outcome.quarantine_id is not None:
        return f"{label}: {outcome.outcome}, quarantine #{outcome.quarantine_id}: {outcome.reason}"
    return f"{label}: {outcome.outcome} ({outcome.reason or 'stored, will be processed'})"


def inject(
    channel: Annotated[str, typer.Option(help="Address of the channel to deliver to.")],
    files: Annotated[
        list[Path],
        typer.Argument(help=".eml or mbox files.", exists=True, dir_okay=False, readable=True),
    ],
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Deliver messages from files to a channel, as if they had arrived by mail."""
    ctx = context()
    with ctx.db.read() as session:
        found = find_channel(session, channel)
        if found is None:
            fail(f"no channel for {channel}; add one with `casemail channel add`")
        channel_id = found.id
    results: list[dict[str, Any]] = []
    for path in files:
        for label, raw in read_messages(path):
            outcome = ingest_raw(ctx.db, channel_id, raw, Source("cli"), options=ctx.ingest_options)
            results.append(
                {
                    "source": label,
                    "outcome": outcome.outcome,
                    "case_id": outcome.case_id,
                    "quarantine_id": outcome.quarantine_id,
                    "reason": outcome.reason,
                }
            )
            if not as_json:
                typer.echo(_describe(label, outcome))
    if as_json:
        emit_json(results)
