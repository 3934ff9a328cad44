"""OAuth2: app registrations (/api/v1/oauth/clients), connecting an account
(/api/v1/accounts/{id}/oauth/...), and the provider's redirect back (/oauth/callback)."""

from __future__ import annotations

import html
from datetime import datetime

from fastapi import APIRouter, Depends, Request, status
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from pydantic import BaseModel, Field

from casemail.accounts.rules import AccountError
from casemail.accounts.schemas import AccountPublic
from casemail.api.accounts import _get, _public
from casemail.api.deps import (
    Admin,
    Context,
    ReadSession,
    UnscopedWriteSession,
    WriteSession,
    require_admin,
)
from casemail.api.schemas import ErrorBody
from casemail.auth.tenancy import DEFAULT_COMPANY_ID
from casemail.db.models import OAuthClient, User
from casemail.oauth import clients, flow
from casemail.oauth.clients import OAuthClientCreate, OAuthClientPublic, OAuthClientUpdate
from casemail.oauth.tokens import TokenError, ensure_access_token
from casemail.web.auth import Signer
from casemail.web.routes import start_session

_ERRORS: dict[int | str, dict[str, object]] = {
    401: {"model": ErrorBody, "description": "Missing or invalid API token"},
    403: {"model": ErrorBody, "description": "Only an admin may do this"},
    404: {"model": ErrorBody, "description": "No such client or account"},
    409: {"model": ErrorBody, "description": "Conflicts with the current state"},
    422: {"model": ErrorBody, "description": "Invalid input; `field` names what to fix"},
}

clients_router = APIRouter(
    prefix="/api/v1/oauth/clients",
    tags=["oauth"],
    dependencies=[Depends(require_admin)],
    responses=_ERRORS,
)
connect_router = APIRouter(
    prefix="/api/v1/accounts",
    tags=["oauth"],
    dependencies=[Depends(require_admin)],
    responses=_ERRORS,
)
callback_router = APIRouter(tags=["oauth"])


class FlowStarted(BaseModel):
    authorization_url: str = Field(description="Open this in the browser of the mailbox owner.")
    expires_at: datetime = Field(description="The sign-in must be completed before this.")


@clients_router.get("", response_model=list[OAuthClientPublic])
def list_clients(session: ReadSession) -> list[OAuthClientPublic]:
    return [clients.to_public(session, client) for client in clients.list_clients(session)]


@clients_router.post("", response_model=OAuthClientPublic, status_code=status.HTTP_201_CREATED)
def create_client(
    body: OAuthClientCreate, ctx: Context, session: WriteSession, caller: Admin
) -> OAuthClientPublic:
    """A company's admin registers apps for their company; only the installation's own
    admins may register one for every company (``company_id`` left out)."""
    operator = caller.company_id == DEFAULT_COMPANY_ID
    wanted = body.company_id if operator else caller.company_id
    body = body.model_copy(update={"company_id": wanted})
    client = clients.create_client(
        session,
        body,
        keys=ctx.keys,
        public_url=ctx.settings.resolved_public_url,
        allow_private=ctx.settings.private_hosts_allowed,
    )
    return clients.to_public(session, client)


@clients_router.get("/{client_id}", response_model=OAuthClientPublic)
def get_client(client_id: int, session: ReadSession) -> OAuthClientPublic:
    return clients.to_public(session, clients.find_client(session, client_id))


@clients_router.patch("/{client_id}", response_model=OAuthClientPublic)
def update_client(
    client_id: int, body: OAuthClientUpdate, ctx: Context, session: WriteSession, caller: Admin
) -> OAuthClientPublic:
    """Replace the client secret here when it expires; then accounts refresh again (those
    that went to needs-reauthorisation must be connected again)."""
    client = _changeable(session, client_id, caller)
    clients.update_client(
        session, client, body, keys=ctx.keys, allow_private=ctx.settings.private_hosts_allowed
    )
    return clients.to_public(session, client)


@clients_router.delete("/{client_id}", status_code=status.HTTP_204_NO_CONTENT)
def delete_client(client_id: int, session: WriteSession, caller: Admin) -> None:
    clients.delete_client(session, _changeable(session, client_id, caller))


def _changeable(session: ReadSession, client_id: int, caller: Admin) -> OAuthClient:
    """A client the caller may change: their company's, or (installation admins only) one
    shared by every company. Others see shared clients but may not change them."""
    client = clients.find_client(session, client_id)
    if client.company_id is None and caller.company_id != DEFAULT_COMPANY_ID:
        raise AccountError(
            f"OAuth client {client_id} is shared by every company: only the installation's "
            "own admins may change it",
            status=403,
        )
    return client


@connect_router.post("/{account_id}/oauth/start", response_model=FlowStarted)
def start_flow(account_id: int, ctx: Context, session: WriteSession) -> FlowStarted:
    """Begin connecting the account: the mailbox owner opens ``authorization_url``, signs in
    at the provider and consents; the provider sends the browser back to /oauth/callback."""
    started = flow.start(session, _get(session, account_id), ctx.keys)
    return FlowStarted(authorization_url=started.authorization_url, expires_at=started.expires_at)


@connect_router.post("/{account_id}/oauth/refresh", response_model=AccountPublic)
def refresh_token(account_id: int, ctx: Context, session: ReadSession) -> AccountPublic:
    """Refresh the access token now (a check that the grant still holds)."""
    _get(session, account_id)
    try:
        ensure_access_token(ctx.db, ctx.keys, account_id, force=True)
    except TokenError as exc:
        raise AccountError(str(exc), field="auth", status=409) from None
    with ctx.db.read() as session:
        return _public(ctx, _get(session, account_id))


@callback_router.get(
    "/oauth/signin/{client_id}",
    status_code=status.HTTP_303_SEE_OTHER,
    response_class=RedirectResponse,
    responses={303: {"description": "To the provider's sign-in page"}},
)
def signin(client_id: int, ctx: Context, session: UnscopedWriteSession) -> RedirectResponse:
    """Sign in with the provider (OpenID Connect) and connect your own mailbox: your
    personal account is made, or updated, from the sign-in. For existing users only."""
    started = flow.start_signin(session, clients.find_client(session, client_id), ctx.keys)
    return RedirectResponse(
        started.authorization_url,
        status_code=status.HTTP_303_SEE_OTHER,
        headers={"Cache-Control": "no-store", "Referrer-Policy": "no-referrer"},
    )


@callback_router.get("/oauth/callback", response_class=HTMLResponse, include_in_schema=True)
def callback(
    request: Request,
    ctx: Context,
    signer: Signer,
    state: str | None = None,
    code: str | None = None,
    error: str | None = None,
    error_description: str | None = None,
) -> Response:
    """Where the provider sends the browser back (RFC 6749 section 4.1.2). No API token: the
    one-time ``state`` is the credential. A sign-in (OpenID Connect) also signs the user in
    to the web app."""
    try:
        done = flow.finish(
            ctx.db,
            ctx.keys,
            state=state,
            code=code,
            error=error,
            error_description=error_description,
            allow_private=ctx.settings.private_hosts_allowed,
        )
    except flow.FlowError as exc:
        return _page("Not connected", str(exc), status.HTTP_400_BAD_REQUEST)
    if done.signed_in_user_id is not None:
        return _web_session(request, ctx, signer, done.signed_in_user_id)
    return _page(
        "Connected",
        f"casemail can now fetch and send mail for {done.email}. You can close this window.",
        status.HTTP_200_OK,
    )


def _web_session(request: Request, ctx: Context, signer: Signer, user_id: int) -> Response:
    with ctx.db.read() as session:
        user = session.get_one(User, user_id)
        cookie, _ = signer.new_session(user.id, user.password_hash)
    response = RedirectResponse("/ui/cases", status_code=status.HTTP_303_SEE_OTHER)
    start_session(response, request, cookie)
    return response


def _page(title: str, words: str, code: int) -> HTMLResponse:
    body = (
        "<!doctype html><html lang=en><meta charset=utf-8>"
        f"<title>casemail: {html.escape(title)}</title>"
        f"<h1>{html.escape(title)}</h1><p>{html.escape(words)}</p></html>"
    )
    # The callback's URL carries the code: keep it out of caches and Referer headers.
    headers = {"Cache-Control": "no-store", "Referrer-Policy": "no-referrer"}
    return HTMLResponse(body, status_code=code, headers=headers)
