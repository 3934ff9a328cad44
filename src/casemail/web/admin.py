"""Admin pages: accounts with their health, the quarantine and the outbox."""

from __future__ import annotations

from datetime import timedelta
from typing import Annotated

from fastapi import APIRouter, Form, HTTPException, Request, status
from fastapi.responses import HTMLResponse, Response
from pydantic import ValidationError
from sqlalchemy import select

from casemail.accounts import service
from casemail.accounts.public import to_public
from casemail.api.deps import Context
from casemail.auth.tenancy import DEFAULT_COMPANY_ID
from casemail.channels.addresses import InvalidAddress
from casemail.channels.rules import ChannelRules
from casemail.channels.service import ChannelChanges, set_rules, update_channel
from casemail.db.models import (
    Account,
    Channel,
    InboundReceipt,
    Installation,
    QuarantineEntry,
    Team,
)
from casemail.ingest import quarantine_actions as actions
from casemail.ingest.preview import preview
from casemail.mailboxes.health import account_health
from casemail.outbound import service as outbox
from casemail.outbound.service import NotFound, OutboundError
from casemail.web.auth import AdminVisitor, CompanySession, check_form
from casemail.web.pages import page, see

router = APIRouter(prefix="/ui/admin", include_in_schema=False)
CsrfField = Annotated[str | None, Form(alias="csrf")]
OUTBOX_STATES = ("ready", "sending", "sent", "error", "cancelled")


def _base(visitor: AdminVisitor, notice: str | None = None) -> dict[str, object]:
    return {"visitor": visitor.principal, "csrf": visitor.session.csrf, "notice": notice}


@router.get("/accounts")
def accounts_page(
    request: Request,
    visitor: AdminVisitor,
    session: CompanySession,
    context: Context,
    notice: str | None = None,
) -> HTMLResponse:
    rows = []
    for account in session.scalars(select(Account).order_by(Account.id)):
        public = to_public(account, service.stored_secrets(account, context.keys))
        rows.append((public, account_health(context.db, account.id)))
    return page(request, "admin_accounts.html", {**_base(visitor, notice), "rows": rows})


@router.get("/quarantine")
def quarantine_page(
    request: Request,
    visitor: AdminVisitor,
    session: CompanySession,
    notice: str | None = None,
) -> HTMLResponse:
    query = select(QuarantineEntry).where(QuarantineEntry.state == "held")
    entries = list(session.scalars(query.order_by(QuarantineEntry.id.desc()).limit(200)))
    shown = [
        (entry, preview(session, session.get_one(InboundReceipt, entry.inbound_id)))
        for entry in entries
    ]
    return page(request, "admin_quarantine.html", {**_base(visitor, notice), "entries": shown})


@router.post("/quarantine/{entry_id}/{action}")
def quarantine_action(
    request: Request,
    entry_id: int,
    action: str,
    visitor: AdminVisitor,
    session: CompanySession,
    context: Context,
    case_id: Annotated[str, Form()] = "",
    csrf: CsrfField = None,
) -> Response:
    check_form(request, visitor, csrf)
    if action not in ("reprocess", "assign", "discard"):
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"No action {action!r}")
    try:
        if action == "discard":
            actions.discard(session, entry_id)
            return see("/ui/admin/quarantine", f"Entry {entry_id} discarded")
        if action == "assign" and not case_id.strip().lstrip("#").isdigit():
            raise actions.QuarantineError("give the number of the case", status=422)
        chosen = int(case_id.strip().lstrip("#")) if action == "assign" else None
        released = actions.release(session, entry_id, assign_case_id=chosen)
    except actions.QuarantineError as exc:
        raise HTTPException(exc.status, str(exc)) from exc
    session.commit()
    result = actions.process_released(context.db, released, context.ingest_options)
    words = f"now {result.outcome}" + (f" (case #{result.case_id})" if result.case_id else "")
    return see("/ui/admin/quarantine", f"Entry {entry_id} {words}")


@router.get("/outbox")
def outbox_page(
    request: Request,
    visitor: AdminVisitor,
    session: CompanySession,
    state: str | None = None,
    notice: str | None = None,
) -> HTMLResponse:
    chosen = state if state in OUTBOX_STATES else None
    entries = outbox.list_outbox(
        session, state=chosen, account_id=None, case_id=None, limit=200, offset=0
    )
    values = {**_base(visitor, notice), "entries": entries, "states": OUTBOX_STATES}
    accounts = list(session.scalars(select(Account).where(Account.outgoing_active.is_(True))))
    everything = session.scalar(select(Installation.outbox_suspended).where(Installation.id == 1))
    suspension = {
        "accounts": accounts,
        "all_suspended": bool(everything),
        "operator": visitor.principal.company_id == DEFAULT_COMPANY_ID,
    }
    return page(request, "admin_outbox.html", {**values, **suspension, "chosen": chosen or ""})


@router.post("/outbox/suspension")
def outbox_suspension(
    request: Request,
    visitor: AdminVisitor,
    session: CompanySession,
    on: Annotated[str, Form()] = "",
    account_id: Annotated[str, Form()] = "",
    csrf: CsrfField = None,
) -> Response:
    """ "Suspend sending": one account's mail, or (the installation's own admins) all of it."""
    check_form(request, visitor, csrf)
    everything = not account_id.isdigit()
    if everything and visitor.principal.company_id != DEFAULT_COMPANY_ID:
        raise HTTPException(status.HTTP_403_FORBIDDEN, "Only the installation's admins may")
    try:
        outbox.suspend(session, account_id=None if everything else int(account_id), on=bool(on))
    except NotFound as exc:
        raise HTTPException(status.HTTP_404_NOT_FOUND, str(exc)) from exc
    words = ("suspended" if on else "resumed") + (" for everything" if everything else "")
    return see("/ui/admin/outbox", f"Sending {words}")


@router.post("/outbox/{outbox_id}/{action}")
def outbox_action(
    request: Request,
    outbox_id: int,
    action: str,
    visitor: AdminVisitor,
    session: CompanySession,
    context: Context,
    csrf: CsrfField = None,
) -> Response:
    check_form(request, visitor, csrf)
    give_up = timedelta(hours=context.settings.outbox_give_up_hours)
    try:
        if action == "reset":
            outbox.reset(session, outbox_id)
        elif action == "retry":
            outbox.retry(session, outbox_id, give_up_after=give_up)
        elif action == "cancel":
            outbox.cancel(session, outbox_id)
        else:
            raise HTTPException(status.HTTP_404_NOT_FOUND, f"No action {action!r}")
    except NotFound as exc:
        raise HTTPException(status.HTTP_404_NOT_FOUND, str(exc)) from exc
    except OutboundError as exc:
        raise HTTPException(status.HTTP_409_CONFLICT, str(exc)) from exc
    return see("/ui/admin/outbox", f"Outbox {outbox_id}: {action} done")


@router.get("/channels")
def channels_page(
    request: Request, visitor: AdminVisitor, session: CompanySession, notice: str | None = None
) -> HTMLResponse:
    rows = list(session.scalars(select(Channel).order_by(Channel.address)))
    teams = list(session.scalars(select(Team).order_by(Team.name)))
    shown = [(channel, ChannelRules.model_validate(channel.rules or {})) for channel in rows]
    values = {**_base(visitor, notice), "channels": shown, "teams": teams}
    return page(request, "admin_channels.html", values)


@router.post("/channels/{channel_id}")
def channel_save(
    request: Request,
    channel_id: int,
    visitor: AdminVisitor,
    session: CompanySession,
    error_address: Annotated[str, Form(max_length=320)] = "",
    purge_days: Annotated[int, Form(ge=1, le=3650)] = 30,
    active: Annotated[str, Form()] = "",
    known_senders_only: Annotated[str, Form()] = "",
    acknowledge_new_cases: Annotated[str, Form()] = "",
    notify_quarantine: Annotated[str, Form()] = "",
    team_id: Annotated[str, Form()] = "",
    structured_fields: Annotated[str, Form(max_length=400)] = "",
    trusted_senders: Annotated[str, Form(max_length=4000)] = "",
    csrf: CsrfField = None,
) -> Response:
    """The channel's settings and the rules people change most; the whole rule set (the
    decision table, reply policies, rate limit) is ``PUT /api/v1/channels/{id}/rules``."""
    check_form(request, visitor, csrf)
    channel = session.get(Channel, channel_id)
    if channel is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"No channel {channel_id}")
    current = ChannelRules.model_validate(channel.rules or {}).model_dump()
    wanted = {
        **current,
        "known_senders_only": bool(known_senders_only),
        "acknowledge_new_cases": bool(acknowledge_new_cases),
        "notify_quarantine": bool(notify_quarantine),
        "team_id": int(team_id) if team_id.isdigit() else None,
        "structured_fields": _listed(structured_fields),
        "trusted_senders": _listed(trusted_senders),
    }
    try:
        changes = ChannelChanges(
            active=bool(active), error_address=error_address, purge_days=purge_days
        )
        update_channel(session, channel_id, changes)
        set_rules(session, channel_id, ChannelRules.model_validate(wanted))
    except (ValidationError, ValueError, InvalidAddress) as exc:
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, str(exc)) from exc
    return see("/ui/admin/channels", f"{channel.address} saved")


def _listed(text: str) -> list[str]:
    return [part.strip() for part in text.replace("\n", ",").split(",") if part.strip()]
