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

from sqlalchemy import delete, update
from sqlalchemy.orm import Session

from casemail.accounts.rules import AccountError
from casemail.accounts.secrets import KeyRing
from casemail.db.engine import Database
from casemail.db.models import Account, OAuthFlow
from casemail.db.types import utcnow
from casemail.oauth import exchange
from casemail.oauth.clients import client_data, client_for_account
from casemail.oauth.exchange import ClientData, ProviderError
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


@dataclass(frozen=True)
class _Consumed:
    account_id: int
    email: str
    client: ClientData
    code_verifier: str = field(repr=False)


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
    state = secrets.token_urlsafe(32)
    # RFC 7636 section 4.1: 43 to 128 unreserved characters; 64 random bytes in base64url.
    verifier = secrets.token_urlsafe(64)
    now = utcnow()
    _purge_old(session, now)
    flow = OAuthFlow(
        state_hash=_hash(state),
        account_id=account.id,
        client_id=client.id,
        redirect_uri=data.redirect_uri,
        expires_at=now + FLOW_LIFETIME,
    )
    session.add(flow)
    session.flush()  # the id binds the encrypted verifier to this row
    flow.secrets = keys.encrypt(flow.id, {"code_verifier": verifier}, table=TABLE)
    url = exchange.authorization_url(
        data, state=state, code_verifier=verifier, login_hint=account.email
    )
    log.info("account %s: OAuth2 flow %s started", account.id, flow.id)
    return Started(url, flow.expires_at)


def finish(
    db: Database,
    keys: KeyRing,
    *,
    state: str | None,
    code: str | None,
    error: str | None = None,
    error_description: str | None = None,
) -> Finished:
    """The callback's parameters as they came; raises ``FlowError`` with what went wrong."""
    if not state:
        raise FlowError("The sign-in answer carries no state: start connecting the account again.")
    consumed = _consume(db, keys, state)
    if error:
        words = f"the provider answered {error}" + (
            f" ({error_description[:300]})" if error_description else ""
        )
        _record_error(db, consumed.account_id, words)
        raise FlowError(f"Not connected: {words}.", account_id=consumed.account_id)
    if not code:
        _record_error(db, consumed.account_id, "the provider answered without a code")
        raise FlowError("Not connected: the provider answered without a code.")
    try:
        tokens = exchange.exchange_code(
            consumed.client, code=code, code_verifier=consumed.code_verifier
        )
    except ProviderError as exc:
        words = f"the token endpoint refused the code ({exc})"
        _record_error(db, consumed.account_id, words)
        raise FlowError(f"Not connected: {words}.", account_id=consumed.account_id) from None
    if not tokens.refresh_token:
        log.warning(
            "account %s: the provider gave no refresh token; the account will need to be "
            "connected again when the access token expires",
            consumed.account_id,
        )
    store_tokens(db, keys, consumed.account_id, tokens)
    log.info("account %s: connected with OAuth2", consumed.account_id)
    return Finished(consumed.account_id, consumed.email)


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
        account = session.get_one(Account, flow.account_id)
        client = client_data(session, account, keys)
        if client.redirect_uri != flow.redirect_uri:
            # The client's redirect URI was changed after this flow began: the token
            # endpoint would refuse the code anyway (RFC 6749 section 4.1.3).
            raise FlowError("The app's redirect address changed meanwhile: start again.")
        assert flow.secrets is not None
        verifier = keys.decrypt(flow.id, flow.secrets, table=TABLE)["code_verifier"]
        return _Consumed(account.id, account.email, client, verifier)


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
