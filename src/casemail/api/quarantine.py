"""/api/v1/quarantine/{id}: look at a held message, reprocess it, assign it to a case, or
discard it (admins only)."""

from __future__ import annotations

from fastapi import APIRouter, Depends, HTTPException
from pydantic import BaseModel, ConfigDict, Field

from casemail.api.deps import Context, WriteSession, require_admin
from casemail.api.schemas import ErrorBody, QuarantinePublic
from casemail.db.models import InboundReceipt, QuarantineEntry
from casemail.ingest import quarantine_actions as actions
from casemail.ingest.preview import preview
from casemail.ingest.types import IngestResult

router = APIRouter(
    prefix="/api/v1/quarantine",
    tags=["quarantine"],
    dependencies=[Depends(require_admin)],
    responses={
        401: {"model": ErrorBody, "description": "Missing or invalid API token"},
        403: {"model": ErrorBody, "description": "Only an admin may do this"},
        404: {"model": ErrorBody, "description": "No such entry (or case)"},
        409: {"model": ErrorBody, "description": "The entry is not held any more"},
    },
)


class PreviewPublic(BaseModel):
    sender: str | None
    subject: str
    date: str | None
    to: list[str]
    excerpt: str = Field(description="The start of the text body, as text")
    attachments: list[str]
    size: int


class QuarantineDetail(QuarantinePublic):
    preview: PreviewPublic


class AssignRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    case_id: int = Field(description="The case the message joins, whatever the rules say.")


class Outcome(BaseModel):
    outcome: str = Field(description="created, appended, quarantined, discarded, rejected, …")
    inbound_id: int
    case_id: int | None
    quarantine_id: int | None
    reason: str | None


def _entry(session: WriteSession, entry_id: int) -> QuarantineEntry:
    entry = session.get(QuarantineEntry, entry_id)
    if entry is None:
        raise HTTPException(404, f"no quarantine entry {entry_id}")
    return entry


def _fail(exc: actions.QuarantineError) -> HTTPException:
    return HTTPException(exc.status, str(exc))


def _outcome(result: IngestResult) -> Outcome:
    return Outcome(
        outcome=result.outcome,
        inbound_id=result.inbound_id,
        case_id=result.case_id,
        quarantine_id=result.quarantine_id,
        reason=result.reason,
    )


@router.get("/{entry_id}", response_model=QuarantineDetail)
def get_entry(entry_id: int, session: WriteSession) -> QuarantineDetail:
    entry = _entry(session, entry_id)
    shown = preview(session, session.get_one(InboundReceipt, entry.inbound_id))
    public = QuarantinePublic.model_validate(entry)
    return QuarantineDetail(**public.model_dump(), preview=PreviewPublic(**shown.__dict__))


@router.post("/{entry_id}/reprocess", response_model=Outcome)
def reprocess(entry_id: int, session: WriteSession, ctx: Context) -> Outcome:
    """Through the pipeline again, with today's rules and contacts."""
    return _release(entry_id, session, ctx, None)


@router.post("/{entry_id}/assign", response_model=Outcome)
def assign(entry_id: int, body: AssignRequest, session: WriteSession, ctx: Context) -> Outcome:
    """Append the message to a case of your choice."""
    return _release(entry_id, session, ctx, body.case_id)


def _release(entry_id: int, session: WriteSession, ctx: Context, case_id: int | None) -> Outcome:
    try:
        released = actions.release(session, entry_id, assign_case_id=case_id)
    except actions.QuarantineError as exc:
        raise _fail(exc) from exc
    session.commit()  # the pipeline runs in its own transaction, after this one
    return _outcome(actions.process_released(ctx.db, released, ctx.ingest_options))


@router.post("/{entry_id}/discard", response_model=QuarantinePublic)
def discard(entry_id: int, session: WriteSession) -> QuarantinePublic:
    try:
        return QuarantinePublic.model_validate(actions.discard(session, entry_id))
    except actions.QuarantineError as exc:
        raise _fail(exc) from exc
