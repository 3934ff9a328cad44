"""The token lifecycle of OAuth2 accounts: refresh before expiry, keep the rotated refresh
token, and stop (visibly, for this account only) when the grant is gone.

Every code path that logs in (mailbox sync, sending, the connection tests) calls
``ensure_access_token`` first; the stored access token is then good for a few minutes more.

Refreshes of one account are serialised: in this process by a lock, and across worker
processes on PostgreSQL by a transaction-level advisory lock held for the refresh. Whoever
gets the lock second finds the token already fresh and does nothing, so a rotating provider
(Microsoft) never sees one refresh token used twice. The new tokens are committed before
anyone uses the new access token (a crash in between costs a refresh, never the grant).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from sqlalchemy import text

from casemail.accounts.rules import AccountError
from casemail.accounts.secrets import KeyRing
from casemail.accounts.service import stored_secrets
from casemail.db.engine import Database
from casemail.db.models import Account
from casemail.db.types import utcnow
from casemail.oauth import exchange
from casemail.oauth.clients import client_data, client_for_account
from casemail.oauth.exchange import ClientData, ProviderError, Tokens
from casemail.oauth.notice import notify_client_rejected, notify_reauthorisation

log = logging.getLogger("casemail.oauth")

REFRESH_BEFORE = timedelta(minutes=5)
# RFC 6749 section 5.1 makes expires_in optional; without it, assume the common hour.
ASSUMED_LIFETIME = timedelta(hours=1)
ACCESS_TOKEN = "oauth_access_token"  # noqa: S105 - the key in the secrets, not a secret
REFRESH_TOKEN = "oauth_refresh_token"  # noqa: S105 - likewise

CONNECTED = "connected"
NEEDS_REAUTHORISATION = "needs-reauthorisation"
NOT_CONNECTED = "not-connected"
CLIENT_REJECTED = "client-rejected"  # the app's secret was refused; the grant is kept

_ADVISORY_NAMESPACE = 0x0A07  # pg_advisory_xact_lock(namespace, account id)
_process_locks: dict[int, threading.Lock] = {}
_process_locks_guard = threading.Lock()


class TokenError(RuntimeError):
    """No usable access token; the message says why in plain words."""


class ReauthorisationNeeded(TokenError):
    """The grant is gone (revoked, expired, or the app's secret): a person must connect the
    account again. Nothing automatic retries the refresh until then."""


class TokenUnavailable(TokenError):
    """The provider could not be asked just now (network, 5xx): retried with the back-off."""


@dataclass(frozen=True)
class _State:
    account_id: int
    email: str
    oauth_state: str | None
    error: str | None
    expires_at: datetime | None
    access_token: str | None = field(repr=False)
    refresh_token: str | None = field(repr=False)
    client: ClientData | None

    refreshed_at: datetime | None = None

    def fresh(self, now: datetime) -> bool:
        return bool(
            self.access_token
            and self.oauth_state == CONNECTED
            and not refresh_due(self.expires_at, self.refreshed_at, now)
        )


def refresh_due(expires_at: datetime | None, refreshed_at: datetime | None, now: datetime) -> bool:
    """Whether a token should be refreshed now: within ``REFRESH_BEFORE`` of its expiry, or
    within a quarter of its lifetime for tokens that live only minutes (else each refresh
    would be due at once)."""
    if expires_at is None:
        return True
    margin = REFRESH_BEFORE
    if refreshed_at is not None:
        margin = min(margin, (expires_at - refreshed_at) / 4)
    return expires_at <= now + margin


def ensure_access_token(
    db: Database, keys: KeyRing, account_id: int, *, force: bool = False
) -> None:
    """Make the account's stored access token good for at least ``REFRESH_BEFORE``; a no-op
    for password accounts. Raises ``TokenError`` when there is none to be had."""
    state = _read(db, keys, account_id)
    if state is None or (not force and state.fresh(utcnow())):
        return
    with _refresh_lock(db, account_id):
        state = _read(db, keys, account_id)  # another worker may have refreshed meanwhile
        if state is None or (not force and state.fresh(utcnow())):
            return
        _refresh(db, keys, state)


def store_tokens(db: Database, keys: KeyRing, account_id: int, tokens: Tokens) -> None:
    """Keep new tokens (a refresh without a new refresh token keeps the old one) and mark the
    account connected. One transaction, the row locked (PostgreSQL) against a concurrent
    account update writing the old secrets back."""
    with db.write() as session:
        account = session.get_one(Account, account_id, with_for_update=True)
        secrets = stored_secrets(account, keys)
        secrets[ACCESS_TOKEN] = tokens.access_token
        if tokens.refresh_token:
            secrets[REFRESH_TOKEN] = tokens.refresh_token
        account.secrets = keys.encrypt(account.id, secrets)
        now = utcnow()
        lifetime = timedelta(seconds=tokens.expires_in) if tokens.expires_in else ASSUMED_LIFETIME
        account.oauth_expires_at = now + lifetime
        account.oauth_refreshed_at = now
        account.oauth_state = CONNECTED
        account.oauth_error = None


def mark_needs_reauthorisation(db: Database, keys: KeyRing, account_id: int, reason: str) -> bool:
    """Drop the dead tokens, say why, and tell people once. True if the state changed."""
    with db.write() as session:
        account = session.get_one(Account, account_id, with_for_update=True)
        changed = account.oauth_state != NEEDS_REAUTHORISATION
        secrets = stored_secrets(account, keys)
        secrets.pop(ACCESS_TOKEN, None)
        secrets.pop(REFRESH_TOKEN, None)
        account.secrets = keys.encrypt(account.id, secrets) if secrets else None
        account.oauth_state = NEEDS_REAUTHORISATION
        account.oauth_error = reason[:2000]
        account.oauth_expires_at = None
        if changed:
            notify_reauthorisation(session, account, reason)
    if changed:
        log.warning("account %s needs to be connected again: %s", account_id, reason)
    return changed


def mark_client_rejected(db: Database, account_id: int, provider_words: str) -> str:
    """The provider refused the app itself: say what to fix; the tokens stay, and work
    again once an admin has replaced the client secret. Tells the admins once."""
    with db.write() as session:
        account = session.get_one(Account, account_id, with_for_update=True)
        client = client_for_account(session, account)
        words = (
            f"the provider refused the OAuth app {client.name!r} ({provider_words}): an admin "
            f"replaces its client secret (`casemail oauth client update {client.id} --secret` "
            f"or PATCH /api/v1/oauth/clients/{client.id}); the account then works again"
        )
        changed = account.oauth_state != CLIENT_REJECTED
        account.oauth_state = CLIENT_REJECTED
        account.oauth_error = words[:2000]
        if changed:
            notify_client_rejected(session, account, client, words)
    if changed:
        log.warning("account %s: %s", account_id, words)
    return words


def _refresh(db: Database, keys: KeyRing, state: _State) -> None:
    if state.oauth_state == NEEDS_REAUTHORISATION:
        raise ReauthorisationNeeded(_reconnect_words(state, state.error or "the grant is gone"))
    if state.client is None:
        raise TokenUnavailable(f"account #{state.account_id}: no OAuth client to refresh with")
    if not state.refresh_token:
        raise ReauthorisationNeeded(
            _reconnect_words(state, "it has never been connected (no refresh token)")
        )
    try:
        tokens = exchange.refresh(state.client, state.refresh_token)
    except ProviderError as exc:
        if exc.needs_reauthorisation:
            reason = f"the provider refused the refresh ({exc})"
            mark_needs_reauthorisation(db, keys, state.account_id, reason)
            raise ReauthorisationNeeded(_reconnect_words(state, reason)) from None
        if exc.client_rejected:
            words = mark_client_rejected(db, state.account_id, str(exc))
            raise TokenUnavailable(words) from None
        raise TokenUnavailable(
            f"could not refresh the OAuth2 token of {state.email}: {exc}; retried later"
        ) from None
    store_tokens(db, keys, state.account_id, tokens)
    log.info("account %s: OAuth2 access token refreshed", state.account_id)


def _reconnect_words(state: _State, reason: str) -> str:
    return (
        f"{state.email} must be connected again ({reason}): "
        f"`casemail oauth connect {state.account_id}` or "
        f"POST /api/v1/accounts/{state.account_id}/oauth/start"
    )


def _read(db: Database, keys: KeyRing, account_id: int) -> _State | None:
    with db.read() as session:
        account = session.get(Account, account_id)
        if account is None or account.auth_type != "oauth2":
            return None
        secrets = stored_secrets(account, keys)
        try:
            client = client_data(session, account, keys)
        except AccountError:
            client = None
        return _State(
            account_id=account.id,
            email=account.email,
            oauth_state=account.oauth_state,
            error=account.oauth_error,
            expires_at=account.oauth_expires_at,
            access_token=secrets.get(ACCESS_TOKEN),
            refresh_token=secrets.get(REFRESH_TOKEN),
            client=client,
            refreshed_at=account.oauth_refreshed_at,
        )


@contextmanager
def _refresh_lock(db: Database, account_id: int) -> Iterator[None]:
    with _process_locks_guard:
        lock = _process_locks.setdefault(account_id, threading.Lock())
    with lock:
        if db.dialect != "postgresql":
            yield  # SQLite: one process, the lock above is enough
            return
        with db.engine.connect() as connection, connection.begin():
            # Held until this transaction ends, i.e. for the whole refresh; released by
            # PostgreSQL if this process dies.
            connection.execute(
                text("SELECT pg_advisory_xact_lock(:namespace, :account)"),
                {"namespace": _ADVISORY_NAMESPACE, "account": account_id},
            )
            yield
