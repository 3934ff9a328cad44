"""/api/v1: send from a case, and the outbox (list, reset, retry, cancel, suspend, resume)."""

from __future__ import annotations

import base64
from datetime import datetime, timedelta
from typing import Annotated

from fastapi import APIRouter, Depends, HTTPException, Query, status
from pydantic import BaseModel, ConfigDict, Field

from casemail.api.deps import (
    Caller,
    Context,
    ReadSession,
    WriteSession,
    require_admin,
    require_operator,
    require_principal,
)
from casemail.api.schemas import ErrorBody
from casemail.db.models import OutboxEntry
from casemail.outbound import service as outbox
from casemail.outbound.compose import OutgoingAttachment
from casemail.outbound.service import CaseMail, NotFound, OutboundError

router = APIRouter(
    prefix="/api/v1",
    dependencies=[Depends(require_principal)],
    responses={
        401: {"model": ErrorBody, "description": "Missing or invalid API token"},
        403: {"model": ErrorBody, "description": "Not allowed for this user"},
        404: {"model": ErrorBody, "description": "No such case or outbox entry"},
        409: {"model": ErrorBody, "description": "Not possible in the entry's state"},
    },
)
MAX_ATTACHMENT_BYTES = 25 * 1024 * 1024  # what the large providers accept per message


class AttachmentIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    filename: str = Field(min_length=1, max_length=255)
    content_type: str = Field("application/octet-stream", pattern=r"^[\w.+-]+/[\w.+-]+$")
    content_base64: str


class SendRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    to: list[str] = Field(min_length=1, max_length=100)
    cc: list[str] = Field(default_factory=list, max_length=100)
    bcc: list[str] = Field(default_factory=list, max_length=100)
    subject: str | None = Field(None, max_length=998, description="Default: Re: the case's")
    text: str | None = None
    html: str | None = None
    attachments: list[AttachmentIn] = Field(default_factory=list, max_length=50)
    reply_to_message_id: int | None = Field(None, description="A message on the case")
    account_id: int | None = Field(None, description="Default: the user's, else the global")
    user_id: int | None = Field(None, description="The agent sending (picks their account)")


class OutboxPublic(BaseModel):
    model_config = ConfigDict(from_attributes=True)
    id: int
    case_id: int | None
    account_id: int | None
    kind: str
    state: str = Field(description="ready, sending, sent, error or cancelled")
    message_id: str
    recipients: list[str]
    subject: str | None
    attempts: int
    next_attempt_at: datetime
    give_up_at: datetime | None
    last_code: int | None
    last_error: str | None
    maybe_duplicate: bool
    sent_at: datetime | None
    created_at: datetime
    updated_at: datetime


class SuspendRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    account_id: int | None = Field(None, description="One account; default: all sending")


def _attachments(items: list[AttachmentIn]) -> tuple[OutgoingAttachment, ...]:
    parts = []
    for item in items:
        try:
            data = base64.b64decode(item.content_base64, validate=True)
        except ValueError as exc:  # binascii.Error, or characters outside ASCII
            raise OutboundError(f"attachment {item.filename!r}: not base64: {exc}") from exc
        parts.append(OutgoingAttachment(item.filename, item.content_type, data))
    if sum(len(p.data) for p in parts) > MAX_ATTACHMENT_BYTES:
        raise OutboundError("attachments over 25 MB: most mail servers would refuse them")
    return tuple(parts)


def _give_up(ctx: Context) -> timedelta:
    return timedelta(hours=ctx.settings.outbox_give_up_hours)


def _public(entry: OutboxEntry) -> OutboxPublic:
    return OutboxPublic.model_validate(entry)


def _failing(exc: Exception) -> HTTPException:
    if isinstance(exc, NotFound):
        return HTTPException(status.HTTP_404_NOT_FOUND, str(exc))
    return HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, str(exc))


@router.post(
    "/cases/{case_id}/messages",
    response_model=OutboxPublic,
    status_code=status.HTTP_201_CREATED,
    tags=["cases"],
)
def post_case_message(
    case_id: int, body: SendRequest, session: WriteSession, ctx: Context, caller: Caller
) -> OutboxPublic:
    """Send mail from a case: queued in the outbox at once (state ``ready``) with its
    Message-ID, threading headers, subject tag and reply address; the sender delivers it.
    It is sent as the caller (their default account) unless an admin names another user."""
    if body.user_id is not None and body.user_id != caller.user_id and not caller.is_admin:
        raise HTTPException(status.HTTP_403_FORBIDDEN, "Only an admin may send as another user")
    try:
        mail = CaseMail(
            to=tuple(body.to),
            cc=tuple(body.cc),
            bcc=tuple(body.bcc),
            subject=body.subject,
            text=body.text,
            html=body.html,
            attachments=_attachments(body.attachments),
            reply_to_message=body.reply_to_message_id,
            account_id=body.account_id,
            user_id=body.user_id if body.user_id is not None else caller.user_id,
        )
        return _public(outbox.send_from_case(session, case_id, mail, give_up_after=_give_up(ctx)))
    except (NotFound, OutboundError) as exc:
        raise _failing(exc) from exc


@router.get(
    "/outbox",
    response_model=list[OutboxPublic],
    dependencies=[Depends(require_admin)],
    tags=["outbox"],
)
def get_outbox(
    session: ReadSession,
    state: Annotated[str | None, Query(pattern="^(ready|sending|sent|error|cancelled)$")] = None,
    account_id: int | None = None,
    case_id: int | None = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
    offset: Annotated[int, Query(ge=0)] = 0,
) -> list[OutboxPublic]:
    rows = outbox.list_outbox(
        session, state=state, account_id=account_id, case_id=case_id, limit=limit, offset=offset
    )
    return [_public(row) for row in rows]


def _command(session: WriteSession, action: str, outbox_id: int, ctx: Context) -> OutboxPublic:
    try:
        if action == "reset":
            entry = outbox.reset(session, outbox_id)
        elif action == "retry":
            entry = outbox.retry(session, outbox_id, give_up_after=_give_up(ctx))
        else:
            entry = outbox.cancel(session, outbox_id)
    except NotFound as exc:
        raise _failing(exc) from exc
    except OutboundError as exc:
        raise HTTPException(status.HTTP_409_CONFLICT, str(exc)) from exc
    return _public(entry)


@router.post(
    "/outbox/{outbox_id}/reset",
    dependencies=[Depends(require_admin)],
    response_model=OutboxPublic,
    tags=["outbox"],
)
def post_reset(outbox_id: int, session: WriteSession, ctx: Context) -> OutboxPublic:
    """ "Reset email sending status": a message stuck in ``sending`` goes back to ``ready``."""
    return _command(session, "reset", outbox_id, ctx)


@router.post(
    "/outbox/{outbox_id}/retry",
    dependencies=[Depends(require_admin)],
    response_model=OutboxPublic,
    tags=["outbox"],
)
def post_retry(outbox_id: int, session: WriteSession, ctx: Context) -> OutboxPublic:
    """ "Clear email error status": try an ``error`` (or waiting) message again now."""
    return _command(session, "retry", outbox_id, ctx)


@router.post(
    "/outbox/{outbox_id}/cancel",
    dependencies=[Depends(require_admin)],
    response_model=OutboxPublic,
    tags=["outbox"],
)
def post_cancel(outbox_id: int, session: WriteSession, ctx: Context) -> OutboxPublic:
    return _command(session, "cancel", outbox_id, ctx)


@router.post("/outbox/suspend", status_code=status.HTTP_204_NO_CONTENT, tags=["outbox"])
def post_suspend(session: WriteSession, caller: Caller, body: SuspendRequest | None = None) -> None:
    """Stop sending (everything, or one account's mail); messages wait in ``ready``.
    Everything: only the installation's own admins; one account: its company's admins."""
    _suspend(session, caller, body, on=True)


@router.post("/outbox/resume", status_code=status.HTTP_204_NO_CONTENT, tags=["outbox"])
def post_resume(session: WriteSession, caller: Caller, body: SuspendRequest | None = None) -> None:
    _suspend(session, caller, body, on=False)


def _suspend(
    session: WriteSession, caller: Caller, body: SuspendRequest | None, *, on: bool
) -> None:
    if body is None or body.account_id is None:
        require_operator(require_admin(caller))
    else:
        require_admin(caller)
    try:
        outbox.suspend(session, account_id=body.account_id if body else None, on=on)
    except NotFound as exc:
        raise _failing(exc) from exc
