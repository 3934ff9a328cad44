"""casemail case list|show|delete"""

from __future__ import annotations

from typing import Annotated

import typer

from casemail.api.schemas import CaseDetail, CasePublic, MessagePublic
from casemail.cases import service as cases
from casemail.cli.common import context, emit_json, fail

app = typer.Typer(help="Cases and their email history.", no_args_is_help=True)


@app.command("list")
def list_(
    status: Annotated[str | None, typer.Option(help="new, open, pending or closed.")] = None,
    limit: Annotated[int, typer.Option(min=1, max=10000)] = 50,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """List cases, most recent activity first."""
    if status is not None and status not in cases.CASE_STATUSES:
        fail(f"unknown status {status!r}; use one of {', '.join(cases.CASE_STATUSES)}")
    ctx = context()
    with ctx.db.read() as session:
        rows = [
            CasePublic.model_validate(c)
            for c in cases.list_cases(session, status=status, limit=limit)
        ]
    if as_json:
        emit_json(rows)
        return
    if not rows:
        typer.echo("no cases")
    for c in rows:
        who = c.contact.email if c.contact else "-"
        typer.echo(
            f"#{c.id:<5} {c.status:<8} {c.last_message_at:%Y-%m-%d %H:%M}  {who:<32} {c.subject}"
        )


@app.command("show")
def show(
    case_id: Annotated[int, typer.Argument(help="Case number.")],
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Show a case and its email history."""
    ctx = context()
    with ctx.db.read() as session:
        case = cases.get_case(session, case_id)
        if case is None:
            fail(f"case {case_id} not found")
        messages = [MessagePublic.model_validate(m) for m in cases.case_messages(session, case_id)]
        detail = CaseDetail(
            **CasePublic.model_validate(case).model_dump(), message_count=len(messages)
        )
    if as_json:
        emit_json({"case": detail, "messages": messages})
        return
    who = detail.contact.email if detail.contact else "-"
    typer.echo(
        f"Case #{detail.id}: {detail.subject}\nstatus {detail.status}, contact {who}, "
        f"{len(messages)} message(s)\n"
    )
    for m in messages:
        sender = m.from_address or "?"
        typer.echo(f"--- {m.direction} {m.created_at:%Y-%m-%d %H:%M} from {sender}: {m.subject}")
        body = (m.text_body or "").strip() or "(no text body)"
        typer.echo(body[:2000])
        for a in m.attachments:
            typer.echo(f"    [attachment] {a.filename or '(unnamed)'} {a.content_type} {a.size} B")
        typer.echo("")


@app.command("delete")
def delete(
    case_id: Annotated[int, typer.Argument(help="Case number.")],
) -> None:
    """Delete a case: it leaves every list; its mail stays stored. A POP3 account with
    delete_when_deleted removes the case's mail from its server at the next sync."""
    ctx = context()
    with ctx.db.write() as session:
        if cases.delete_case(session, case_id) is None:
            fail(f"case {case_id} not found")
    typer.echo(f"case {case_id} deleted (its mail stays stored)")
