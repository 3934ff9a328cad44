"""The account wizard (seed 002's "Mail Settings", seed 003's "Email Setup"): address →
settings found by autodetection or a provider preset → the settings form (or "Connect" for
OAuth2 providers) → test incoming → test outgoing → activate, with a channel for its mail.

The account is created inactive, so nothing is fetched or sent before the admin has seen
both tests pass (or decided to go on anyway) and pressed "Activate".
"""

from __future__ import annotations

import asyncio
from typing import Annotated, Any

from fastapi import APIRouter, Form, HTTPException, Request, status
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from pydantic import ValidationError
from sqlalchemy import select

from casemail.accounts import autodetect, checks, service
from casemail.accounts.public import to_public
from casemail.accounts.rules import AccountError
from casemail.accounts.schemas import AccountCreate, AccountUpdate
from casemail.api.deps import Context
from casemail.auth.tenancy import scope_to_company
from casemail.channels.addresses import InvalidAddress
from casemail.channels.service import ChannelExists, add_channel
from casemail.db.models import Account, Channel
from casemail.oauth import flow
from casemail.web.auth import AdminVisitor, CompanySession, check_form
from casemail.web.pages import page, see

router = APIRouter(prefix="/ui/admin/accounts", include_in_schema=False)
CsrfField = Annotated[str | None, Form(alias="csrf")]
ROLES = ("global", "team", "personal", "system")
SECURITY = ("tls", "starttls", "none")


def _base(visitor: AdminVisitor, **values: Any) -> dict[str, Any]:
    return {"visitor": visitor.principal, "csrf": visitor.session.csrf, **values}


@router.get("/new")
def start(request: Request, visitor: AdminVisitor) -> HTMLResponse:
    return page(request, "wizard_address.html", _base(visitor, email="", error=None))


@router.post("/new")
async def detect(
    request: Request,
    visitor: AdminVisitor,
    context: Context,
    email: Annotated[str, Form(max_length=320)],
    csrf: CsrfField = None,
) -> HTMLResponse:
    """Step 2: the settings form, filled with what autodetection found (DNS SRV, MX,
    autoconfig, presets; no guessing of host names, which would knock on strangers' doors)."""
    check_form(request, visitor, csrf)
    try:
        found = await autodetect.detect_for_api(context, email, probe=False)
    except ValueError as exc:  # an address that cannot be one
        values = _base(visitor, email=email, error=str(exc))
        return page(request, "wizard_address.html", values, status_code=422)
    return page(request, "wizard_settings.html", _base(visitor, **_form_values(email, found)))


def _form_values(email: str, found: dict[str, Any]) -> dict[str, Any]:
    incoming = found.get("incoming") or {}
    outgoing = found.get("outgoing") or {}
    return {
        "email": email,
        "found": found,
        "oauth": found.get("oauth_provider"),
        "roles": ROLES,
        "securities": SECURITY,
        "form": {
            "name": email,
            "role": "global",
            "protocol": incoming.get("protocol", "imap"),
            "in_host": incoming.get("host", ""),
            "in_port": incoming.get("port") or "",
            "in_security": incoming.get("security", "tls"),
            "out_host": outgoing.get("host", ""),
            "out_port": outgoing.get("port") or "",
            "out_security": outgoing.get("security", "starttls"),
        },
        "error": None,
    }


@router.post("/create")
def create(
    request: Request,
    visitor: AdminVisitor,
    session: CompanySession,
    context: Context,
    email: Annotated[str, Form(max_length=320)],
    name: Annotated[str, Form(max_length=200)],
    role: Annotated[str, Form()],
    protocol: Annotated[str, Form()] = "imap",
    in_host: Annotated[str, Form(max_length=255)] = "",
    in_port: Annotated[str, Form(max_length=5)] = "",
    in_security: Annotated[str, Form()] = "tls",
    out_host: Annotated[str, Form(max_length=255)] = "",
    out_port: Annotated[str, Form(max_length=5)] = "",
    out_security: Annotated[str, Form()] = "starttls",
    password: Annotated[str, Form(max_length=1024)] = "",
    owner: Annotated[str, Form(max_length=320)] = "",
    oauth_provider: Annotated[str, Form(max_length=40)] = "",
    csrf: CsrfField = None,
) -> Response:
    """Step 3: save the account, inactive, and go on to its tests."""
    check_form(request, visitor, csrf)
    document: dict[str, Any] = {
        "role": role,
        "name": name,
        "email": email,
        "incoming_active": False,
        "outgoing_active": False,
    }
    if oauth_provider:
        document.update(auth="oauth2", oauth_provider=oauth_provider)
    if role == "personal":
        document["user"] = owner or visitor.principal.email
    elif role == "team":
        document["team"] = owner
    secret = password or None
    if in_host.strip():
        document["incoming"] = {
            "protocol": protocol,
            "host": in_host.strip(),
            "port": int(in_port) if in_port.isdigit() else None,
            "security": in_security,
            "password": secret,
        }
    if out_host.strip():
        document["outgoing"] = {
            "host": out_host.strip(),
            "port": int(out_port) if out_port.isdigit() else None,
            "security": out_security,
            "password": None if secret and in_host.strip() else secret,
        }
    try:
        data = AccountCreate.model_validate(document)
        allow = context.settings.private_hosts_allowed
        account, _ = service.create_account(session, data, keys=context.keys, allow_private=allow)
    except (ValidationError, AccountError) as exc:
        values = _form_values(email, {})
        values["form"] = {
            "name": name, "role": role, "protocol": protocol, "in_host": in_host,
            "in_port": in_port, "in_security": in_security, "out_host": out_host,
            "out_port": out_port, "out_security": out_security,
        }  # fmt: skip
        values["error"] = _words(exc)
        return page(request, "wizard_settings.html", _base(visitor, **values), status_code=422)
    return see(f"/ui/admin/accounts/{account.id}/setup")


def _words(exc: Exception) -> str:
    if isinstance(exc, ValidationError):
        return "; ".join(f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors())
    return str(exc)


def _check_owned(context: Context, visitor: AdminVisitor, account_id: int) -> None:
    with context.db.read() as session:
        _account(scope_to_company(session, visitor.principal.company_id), account_id)


def _account(session: CompanySession, account_id: int) -> Account:
    account = session.get(Account, account_id)
    if account is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"No account {account_id}")
    return account


@router.get("/{account_id}/setup")
def setup(
    request: Request,
    account_id: int,
    visitor: AdminVisitor,
    session: CompanySession,
    context: Context,
    notice: str | None = None,
) -> HTMLResponse:
    """Steps 4 to 6: test incoming, test outgoing, activate."""
    account = _account(session, account_id)
    public = to_public(account, service.stored_secrets(account, context.keys))
    channel = session.scalar(select(Channel).where(Channel.account_id == account.id))
    values = _base(visitor, account=public, channel=channel, notice=notice)
    return page(request, "wizard_setup.html", values)


@router.post("/{account_id}/test/{direction}")
async def run_test(
    request: Request,
    account_id: int,
    direction: str,
    visitor: AdminVisitor,
    context: Context,
    to: Annotated[str, Form(max_length=320)] = "",
    csrf: CsrfField = None,
) -> Response:
    check_form(request, visitor, csrf)
    # No session held across the test's awaits: it records its result in its own
    # transaction, and a write lock held here would block it (and everyone) on SQLite.
    await asyncio.to_thread(_check_owned, context, visitor, account_id)
    if direction == "incoming":
        outcome = await checks.test_incoming(context, account_id)
    elif direction == "outgoing":
        outcome = await checks.test_outgoing(context, account_id, to=to or visitor.principal.email)
    else:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"No test {direction!r}")
    words = f"Test {direction}: " + ("passed" if outcome.ok else f"failed: {outcome.message}")
    return see(f"/ui/admin/accounts/{account_id}/setup", words)


@router.post("/{account_id}/activate")
def activate(
    request: Request,
    account_id: int,
    visitor: AdminVisitor,
    session: CompanySession,
    context: Context,
    channel_address: Annotated[str, Form(max_length=320)] = "",
    csrf: CsrfField = None,
) -> Response:
    """Turn fetching and sending on, make it the default where it is the first of its kind,
    and give its mail a channel (the address its cases are filed under)."""
    check_form(request, visitor, csrf)
    account = _account(session, account_id)
    changes = AccountUpdate(
        incoming_active=account.settings.get("incoming") is not None,
        outgoing_active=account.settings.get("outgoing") is not None,
    )
    try:
        service.update_account(
            session,
            account,
            changes,
            keys=context.keys,
            allow_private=context.settings.private_hosts_allowed,
        )
        if not account.is_default:
            service.set_default(session, account)
        if channel_address.strip() and account.settings.get("incoming") is not None:
            add_channel(session, address=channel_address, name=account.name, account_id=account.id)
    except (AccountError, ChannelExists, InvalidAddress, ValueError) as exc:
        raise HTTPException(status.HTTP_409_CONFLICT, str(exc)) from exc
    return see("/ui/admin/accounts", f"{account.name} is active")


@router.post("/{account_id}/connect")
def connect(
    request: Request,
    account_id: int,
    visitor: AdminVisitor,
    session: CompanySession,
    context: Context,
    csrf: CsrfField = None,
) -> Response:
    """OAuth2 providers: off to the provider's sign-in; it sends the browser back to
    /oauth/callback, which stores the grant."""
    check_form(request, visitor, csrf)
    started = flow.start(session, _account(session, account_id), context.keys)
    return RedirectResponse(started.authorization_url, status_code=status.HTTP_303_SEE_OTHER)
