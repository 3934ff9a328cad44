"""The authorization code flow with PKCE (RFC 6749 section 4.1, RFC 7636) for one account.

``start`` records a flow and returns the provider's address to send the browser to;
``finish`` is the callback: it consumes the flow (once, within its lifetime, only with the
exact ``state``), exchanges the code with the PKCE verifier and the same redirect URI, and
stores the tokens. The state is the callback's only credential (RFC 6749 section 10.12), so
only its SHA-256 is kept; the verifier never leaves the server except to the token endpoint.
"""

from __future__ import annotations

import hashlib
import logging
import secrets
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import NoReturn

from sqlalchemy import delete, update
from sqlalchemy.orm import Session

from casemail.accounts.rules import AccountError
from casemail.accounts.secrets import KeyRing
from casemail.db.engine import Database
from casemail.db.models import Account, OAuthClient, OAuthFlow
from casemail.db.types import utcnow
from casemail.oauth import exchange
from casemail.oauth.clients import client_data, client_data_of, client_for_account
from casemail.oauth.exchange import ClientData, ProviderError, Tokens
from casemail.oauth.idtoken import IdTokenError, verify_id_token
from casemail.oauth.providers import SIGNIN_SCOPES
from casemail.oauth.signin import SignInRefused, personal_account_for
from casemail.oauth.tokens import store_tokens

log = logging.getLogger("casemail.oauth")

FLOW_LIFETIME = timedelta(minutes=10)
TABLE = OAuthFlow.__tablename__


class FlowError(ValueError):
    """The callback cannot complete; the message is for the person in the browser."""

    def __init__(self, message: str, *, account_id: int | None = None) -> None:
        super().__init__(message)
        self.account_id = account_id


@dataclass(frozen=True)
class Started:
    authorization_url: str = field(repr=False)  # carries the state
    expires_at: datetime


@dataclass(frozen=True)
class Finished:
    account_id: int
    email: str
    # A sign-in (OpenID Connect): the user who signed in, for the web app's session.
    signed_in_user_id: int | None = None


@dataclass(frozen=True)
class _Consumed:
    purpose: str
    account_id: int | None  # None for a sign-in: the account is found or made at the end
    email: str | None
    client_row: int
    client: ClientData
    code_verifier: str = field(repr=False)
    nonce: str | None = field(default=None, repr=False)


def start(session: Session, account: Account, keys: KeyRing) -> Started:
    if account.auth_type != "oauth2":
        raise AccountError(
            f"account #{account.id} signs in with a password: set auth to oauth2 first",
            field="auth",
            status=409,
        )
    if account.deactivated_at is not None:
        raise AccountError(f"account #{account.id} is deactivated", status=409)
    client = client_for_account(session, account)
    data = client_data(session, account, keys)
    state, verifier, flow = _new_flow(session, client, data, keys, account_id=account.id)
    url = exchange.authorization_url(
        data, state=state, code_verifier=verifier, login_hint=account.email
    )
    log.info("account %s: OAuth2 flow %s started", account.id, flow.id)
    return Started(url, flow.expires_at)


def start_signin(session: Session, client: OAuthClient, keys: KeyRing) -> Started:
    """OpenID Connect sign-in (Core 3.1.2.1) that also grants the mail scopes; the nonce
    comes back inside the ID token and ties it to this flow."""
    data = client_data_of(client, keys)
    if not data.issuer or not data.jwks_url:
        raise AccountError(
            f"OAuth client {client.name!r} has no OpenID Connect issuer and keys URL",
            field="issuer",
            status=409,
        )
    nonce = secrets.token_urlsafe(24)
    state, verifier, flow = _new_flow(session, client, data, keys, account_id=None, nonce=nonce)
    url = exchange.authorization_url(
        data,
        state=state,
        code_verifier=verifier,
        login_hint=None,
        nonce=nonce,
        extra_scopes=SIGNIN_SCOPES,
    )
    log.info("OAuth2 sign-in flow %s started with client %s", flow.id, client.id)
    return Started(url, flow.expires_at)


def _new_flow(
    session: Session,
    client: OAuthClient,
    data: ClientData,
    keys: KeyRing,
    *,
    account_id: int | None,
    nonce: str | None = None,
) -> tuple[str, str, OAuthFlow]:
    state = secrets.token_urlsafe(32)
    # RFC 7636 section 4.1: 43 to 128 unreserved characters; 64 random bytes in base64url.
    verifier = secrets.token_urlsafe(64)
    now = utcnow()
    _purge_old(session, now)
    flow = OAuthFlow(
        state_hash=_hash(state),
        purpose="connect" if account_id is not None else "signin",
        account_id=account_id,
        client_id=client.id,
        redirect_uri=data.redirect_uri,
        expires_at=now + FLOW_LIFETIME,
    )
    session.add(flow)
    session.flush()  # the id binds the encrypted verifier to this row
    hidden = {"code_verifier": verifier, **({"nonce": nonce} if nonce else {})}
    flow.secrets = keys.encrypt(flow.id, hidden, table=TABLE)
    return state, verifier, flow


def finish(
    db: Database,
    keys: KeyRing,
    *,
    state: str | None,
    code: str | None,
    error: str | None = None,
    error_description: str | None = None,
    allow_private: bool = False,
) -> Finished:
    """The callback's parameters as they came; raises ``FlowError`` with what went wrong.
    ``allow_private``: the servers of an account made at sign-in may be private hosts."""
    if not state:
        raise FlowError("The sign-in answer carries no state: start connecting the account again.")
    consumed = _consume(db, keys, state)
    if error:
        words = f"the provider answered {error}" + (
            f" ({error_description[:300]})" if error_description else ""
        )
        _fail(db, consumed, words)
    if not code:
        _fail(db, consumed, "the provider answered without a code")
    try:
        tokens = exchange.exchange_code(
            consumed.client, code=code, code_verifier=consumed.code_verifier
        )
    except ProviderError as exc:
        _fail(db, consumed, f"the token endpoint refused the code ({exc})")
    account_id, email, user_id = consumed.account_id, consumed.email, None
    if account_id is None:
        account_id, email, user_id = _signed_in_account(db, keys, consumed, tokens, allow_private)
    if not tokens.refresh_token:
        log.warning(
            "account %s: the provider gave no refresh token; the account will need to be "
            "connected again when the access token expires",
            account_id,
        )
    store_tokens(db, keys, account_id, tokens)
    log.info("account %s: connected with OAuth2 (%s)", account_id, consumed.purpose)
    return Finished(account_id, email or "", user_id)


def _signed_in_account(
    db: Database, keys: KeyRing, consumed: _Consumed, tokens: Tokens, allow_private: bool
) -> tuple[int, str, int | None]:
    if not tokens.id_token:
        _fail(db, consumed, "the provider sent no ID token (is 'openid' allowed for the app?)")
    try:
        identity = verify_id_token(consumed.client, tokens.id_token, nonce=consumed.nonce or "")
    except IdTokenError as exc:
        _fail(db, consumed, str(exc))
    try:
        with db.write() as session:
            client = session.get_one(OAuthClient, consumed.client_row)
            account = personal_account_for(
                session, client, identity, keys=keys, allow_private=allow_private
            )
            return account.id, account.email, account.owner_user_id
    except SignInRefused as exc:
        _fail(db, consumed, str(exc))


def _fail(db: Database, consumed: _Consumed, words: str) -> NoReturn:
    """Record why on the account (a sign-in has none yet: logged only) and stop."""
    if consumed.account_id is not None:
        _record_error(db, consumed.account_id, words)
    else:
        log.warning("OAuth2 sign-in failed: %s", words)
    raise FlowError(f"Not connected: {words}.", account_id=consumed.account_id)


def _consume(db: Database, keys: KeyRing, state: str) -> _Consumed:
    """Mark the flow used (atomically: a replayed callback finds nothing) and read it."""
    now = utcnow()
    with db.write() as session:
        flow_id = session.scalar(
            update(OAuthFlow)
            .where(OAuthFlow.state_hash == _hash(state), OAuthFlow.used_at.is_(None))
            .values(used_at=now)
            .returning(OAuthFlow.id)
        )
        if flow_id is None:
            raise FlowError(
                "This sign-in link is unknown or was already used: start connecting the "
                "account again."
            )
        flow = session.get_one(OAuthFlow, flow_id)
        if flow.expires_at <= now:
            raise FlowError(
                "This sign-in took longer than "
                f"{int(FLOW_LIFETIME.total_seconds() // 60)} minutes: start connecting the "
                "account again.",
                account_id=flow.account_id,
            )
        account = session.get(Account, flow.account_id) if flow.account_id else None
        client_row = session.get_one(OAuthClient, flow.client_id)
        client = client_data_of(client_row, keys)
        if client.redirect_uri != flow.redirect_uri:
            # The client's redirect URI was changed after this flow began: the token
            # endpoint would refuse the code anyway (RFC 6749 section 4.1.3).
            raise FlowError("The app's redirect address changed meanwhile: start again.")
        assert flow.secrets is not None
        hidden = keys.decrypt(flow.id, flow.secrets, table=TABLE)
        return _Consumed(
            flow.purpose,
            account.id if account else None,
            account.email if account else None,
            client_row.id,
            client,
            hidden["code_verifier"],
            hidden.get("nonce"),
        )


def _record_error(db: Database, account_id: int, words: str) -> None:
    with db.write() as session:
        account = session.get_one(Account, account_id)
        account.oauth_error = f"Connecting failed: {words}"[:2000]
    log.warning("account %s: OAuth2 connect failed: %s", account_id, words)


def _purge_old(session: Session, now: datetime) -> None:
    """Flows are kept a day after they expire (to say "already used" rather than
    "unknown" for a while), then dropped with their verifiers."""
    session.execute(delete(OAuthFlow).where(OAuthFlow.expires_at < now - timedelta(days=1)))


def _hash(state: str) -> str:
    return hashlib.sha256(state.encode("utf-8", "surrogatepass")).hexdigest()
