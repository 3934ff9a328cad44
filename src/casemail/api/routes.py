"""Routes of /api/v1. Thin: each builds a query or command and calls one service function."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException, Query, status
from sqlalchemy import select

from casemail.api.deps import ReadSession, WriteSession, require_admin, require_principal
from casemail.api.schemas import (
    CaseDetail,
    CasePublic,
    CaseUpdate,
    ChannelCreate,
    ChannelPublic,
    ChannelUpdate,
    ErrorBody,
    InboundPublic,
    MessagePublic,
    QuarantinePublic,
)
from casemail.cases import service as cases
from casemail.channels.addresses import InvalidAddress
from casemail.channels.rules import ChannelRules
from casemail.channels.service import (
    ChannelChanges,
    ChannelExists,
    UnknownChannel,
    add_channel,
    list_channels,
    set_rules,
    update_channel,
)
from casemail.db.models import Channel, OutboxEntry

router = APIRouter(
    prefix="/api/v1",
    dependencies=[Depends(require_principal)],
    responses={
        401: {"model": ErrorBody, "description": "Missing or invalid API token"},
        403: {"model": ErrorBody, "description": "Only an admin may do this"},
    },
)
ADMIN = [Depends(require_admin)]
Limit = Annotated[int, Query(ge=1, le=500)]
Offset = Annotated[int, Query(ge=0, le=10_000_000)]
NOT_FOUND: dict[int | str, dict[str, Any]] = {
    404: {"model": ErrorBody, "description": "No such case"}
}


@router.get("/cases", response_model=list[CasePublic], tags=["cases"])
def get_cases(
    session: ReadSession,
    status_: Annotated[
        str | None, Query(alias="status", pattern="^(new|open|pending|closed)$")
    ] = None,
    limit: Limit = 50,
    offset: Offset = 0,
    q: Annotated[
        str | None,
        Query(max_length=200, description="Subject, contact address or name, or #case number"),
    ] = None,
    team_id: int | None = None,
    assignee_user_id: Annotated[
        int | None, Query(description="Only cases assigned to this user")
    ] = None,
    unassigned: Annotated[bool, Query(description="Only cases assigned to nobody")] = False,
) -> list[CasePublic]:
    where = cases.CaseFilter(
        status=status_,
        team_id=team_id,
        assignee_user_id=assignee_user_id,
        unassigned=unassigned,
        search=q,
    )
    rows = cases.list_cases(session, limit=limit, offset=offset, where=where)
    return [CasePublic.model_validate(row) for row in rows]


@router.patch("/cases/{case_id}", response_model=CaseDetail, tags=["cases"], responses=NOT_FOUND)
def patch_case(case_id: int, body: CaseUpdate, session: WriteSession) -> CaseDetail:
    """Change the status, the assignee (``null``: nobody) or the team; fields left out stay."""
    case = cases.get_case(session, case_id)
    if case is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"Case {case_id} not found")
    given = body.model_fields_set
    try:
        cases.update_case(
            session,
            case,
            status=body.status,
            assignee_user_id=body.assignee_user_id if "assignee_user_id" in given else "keep",
            team_id=body.team_id if "team_id" in given else "keep",
        )
    except cases.CaseUpdateError as exc:
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, str(exc)) from exc
    return get_case(case_id, session)


@router.get("/cases/{case_id}", response_model=CaseDetail, tags=["cases"], responses=NOT_FOUND)
def get_case(case_id: int, session: ReadSession) -> CaseDetail:
    case = cases.get_case(session, case_id)
    if case is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"Case {case_id} not found")
    public = CasePublic.model_validate(case)
    return CaseDetail(**public.model_dump(), message_count=cases.message_count(session, case_id))


@router.delete(
    "/cases/{case_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    tags=["cases"],
    responses=NOT_FOUND,
    dependencies=ADMIN,
)
def delete_case(case_id: int, session: WriteSession) -> None:
    """Delete a case: it leaves every list, and its mail stays stored (a soft delete). A
    POP3 account with ``delete_when_deleted`` removes the case's mail from its server at
    the next sync."""
    if cases.delete_case(session, case_id) is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"Case {case_id} not found")


@router.get(
    "/cases/{case_id}/messages",
    response_model=list[MessagePublic],
    tags=["cases"],
    responses=NOT_FOUND,
)
def get_case_messages(case_id: int, session: ReadSession) -> list[MessagePublic]:
    if cases.get_case(session, case_id) is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"Case {case_id} not found")
    messages = [MessagePublic.model_validate(m) for m in cases.case_messages(session, case_id)]
    sent = {m.message_id for m in messages if m.direction == "outbound" and m.message_id}
    entries = session.scalars(select(OutboxEntry).where(OutboxEntry.message_id.in_(sent)))
    delivery = {entry.message_id: entry for entry in entries}
    for message in messages:
        entry = delivery.get(message.message_id or "")
        if entry is not None:
            message.outbox_id = entry.id
            message.delivery_state = entry.state
            message.delivery_error = entry.last_error
    return messages


@router.get(
    "/quarantine",
    response_model=list[QuarantinePublic],
    tags=["quarantine"],
    dependencies=ADMIN,
)
def get_quarantine(
    session: ReadSession,
    state: Annotated[
        str, Query(pattern="^(held|released|discarded|all)$", description="'all' for every state")
    ] = "held",
    limit: Limit = 100,
    offset: Offset = 0,
) -> list[QuarantinePublic]:
    chosen = None if state == "all" else state
    rows = cases.list_quarantine(session, state=chosen, limit=limit, offset=offset)
    return [QuarantinePublic.model_validate(row) for row in rows]


@router.get("/inbound", response_model=list[InboundPublic], tags=["quarantine"], dependencies=ADMIN)
def get_inbound(
    session: ReadSession,
    state: Annotated[
        str | None,
        Query(
            pattern="^(received|processing|done|quarantined|discarded|rejected)$",
            description="only receipts in this state",
        ),
    ] = None,
    limit: Limit = 100,
    offset: Offset = 0,
) -> list[InboundPublic]:
    """Every message received, newest first, and what became of it: the way to see mail
    the pipeline discarded (loops) or rejected, and why."""
    rows = cases.list_inbound(session, state=state, limit=limit, offset=offset)
    return [InboundPublic.model_validate(row) for row in rows]


@router.get("/channels", response_model=list[ChannelPublic], tags=["channels"])
def get_channels(session: ReadSession) -> list[ChannelPublic]:
    return [ChannelPublic.model_validate(c) for c in list_channels(session)]


@router.post(
    "/channels",
    response_model=ChannelPublic,
    status_code=status.HTTP_201_CREATED,
    tags=["channels"],
    dependencies=ADMIN,
    responses={
        409: {"model": ErrorBody, "description": "A channel for this address exists"},
        422: {"description": "Invalid address or network"},
    },
)
def post_channel(body: ChannelCreate, session: WriteSession) -> ChannelPublic:
    try:
        channel = add_channel(
            session,
            address=body.address,
            name=body.name,
            allowed_networks=body.allowed_networks,
            subject_tag_prefix=body.subject_tag_prefix,
            account_id=body.account_id,
        )
    except ChannelExists as exc:
        raise HTTPException(status.HTTP_409_CONFLICT, str(exc)) from exc
    except (InvalidAddress, ValueError) as exc:
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, str(exc)) from exc
    return ChannelPublic.model_validate(channel)


@router.patch(
    "/channels/{channel_id}",
    response_model=ChannelPublic,
    tags=["channels"],
    responses={**NOT_FOUND, 422: {"description": "Invalid address, network or number"}},
    dependencies=ADMIN,
)
def patch_channel(channel_id: int, body: ChannelUpdate, session: WriteSession) -> ChannelPublic:
    """Name, active, the error address for quarantine notices, the quarantine's purge days,
    the sender networks and the subject tag prefix; fields left out stay."""
    try:
        channel = update_channel(session, channel_id, ChannelChanges(**body.model_dump()))
    except UnknownChannel as exc:
        raise HTTPException(status.HTTP_404_NOT_FOUND, str(exc)) from exc
    except (InvalidAddress, ValueError) as exc:
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, str(exc)) from exc
    return ChannelPublic.model_validate(channel)


@router.get(
    "/channels/{channel_id}/rules",
    response_model=ChannelRules,
    tags=["channels"],
    responses=NOT_FOUND,
    dependencies=ADMIN,
)
def get_channel_rules(channel_id: int, session: ReadSession) -> ChannelRules:
    """The channel's ingest rules, defaults filled in: the decision table overrides,
    reply policies, rate limit, team routing and structured fields."""
    channel = session.get(Channel, channel_id)
    if channel is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"Channel {channel_id} not found")
    return ChannelPublic.model_validate(channel).rules


@router.put(
    "/channels/{channel_id}/rules",
    response_model=ChannelRules,
    tags=["channels"],
    responses={**NOT_FOUND, 422: {"description": "A rule the pipeline cannot follow"}},
    dependencies=ADMIN,
)
def put_channel_rules(channel_id: int, body: ChannelRules, session: WriteSession) -> ChannelRules:
    """Replace the channel's ingest rules. Options left out take their defaults."""
    try:
        channel = set_rules(session, channel_id, body)
    except UnknownChannel as exc:
        raise HTTPException(status.HTTP_404_NOT_FOUND, str(exc)) from exc
    except ValueError as exc:
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, str(exc)) from exc
    return ChannelPublic.model_validate(channel).rules
