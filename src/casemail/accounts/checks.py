""" "Test incoming" and "test outgoing" for a stored account, with the result recorded.

The network part runs outside any database transaction (a slow server must not hold a
write lock), then the outcome is written to the account in a short transaction of its own.
"""

from __future__ import annotations

import asyncio
import logging

from casemail.accounts import conntest
from casemail.accounts.endpoint import Direction, Endpoint, TestOutcome
from casemail.accounts.endpoints import incoming_endpoint, outgoing_endpoint, sender_address
from casemail.accounts.hosts import HostNotAllowed, check_host
from casemail.accounts.rules import AccountError
from casemail.accounts.service import stored_secrets
from casemail.bootstrap import AppContext
from casemail.db.models import Account
from casemail.db.types import utcnow
from casemail.oauth.tokens import TokenError, ensure_access_token

log = logging.getLogger("casemail.accounts")


def _load(ctx: AppContext, account_id: int, direction: Direction) -> tuple[Endpoint, str]:
    with ctx.db.read() as session:
        account = session.get(Account, account_id)
        if account is None:
            raise AccountError(f"no account {account_id}", status=404)
        secrets = stored_secrets(account, ctx.keys)
        build = incoming_endpoint if direction == "incoming" else outgoing_endpoint
        endpoint = build(account, secrets, ca_file=ctx.settings.tls_ca_file)
        return endpoint, sender_address(account)


def _refused_host(ctx: AppContext, endpoint: Endpoint, direction: Direction) -> TestOutcome | None:
    """Checked again at connect time: DNS may have changed since the account was saved."""
    try:
        check_host(endpoint.host, endpoint.port, allow_private=ctx.settings.private_hosts_allowed)
    except HostNotAllowed as exc:
        return TestOutcome(ok=False, direction=direction, message=str(exc), field="host")
    except ValueError:
        return None  # an unknown name is reported by the protocol test in its own words
    return None


def record(ctx: AppContext, account_id: int, outcome: TestOutcome) -> None:
    with ctx.db.write() as session:
        account = session.get(Account, account_id)
        if account is None:
            return
        prefix = outcome.direction
        setattr(account, f"{prefix}_tested_at", utcnow())
        setattr(account, f"{prefix}_test_ok", outcome.ok)
        setattr(account, f"{prefix}_test_message", outcome.message)
    log.info(
        "account %s: test %s %s: %s",
        account_id,
        outcome.direction,
        "ok" if outcome.ok else "failed",
        outcome.message,
    )


async def _token_problem(
    ctx: AppContext, account_id: int, direction: Direction
) -> TestOutcome | None:
    """An OAuth2 account is tested with a fresh access token, as the workers would log in."""
    try:
        await asyncio.to_thread(ensure_access_token, ctx.db, ctx.keys, account_id)
    except TokenError as exc:
        return TestOutcome(ok=False, direction=direction, message=str(exc), field="auth")
    return None


# Database and DNS work runs in threads: blocking the event loop on SQLite's write lock
# would stall the very requests whose transactions hold it (until the 30 s busy timeout).


async def test_incoming(ctx: AppContext, account_id: int) -> TestOutcome:
    outcome = await _token_problem(ctx, account_id, "incoming")
    # After the token check: with the refreshed token.
    endpoint, _ = await asyncio.to_thread(_load, ctx, account_id, "incoming")
    outcome = outcome or await asyncio.to_thread(_refused_host, ctx, endpoint, "incoming")
    if outcome is None:
        outcome = await asyncio.to_thread(conntest.test_incoming, endpoint)
    await asyncio.to_thread(record, ctx, account_id, outcome)
    return outcome


async def test_outgoing(ctx: AppContext, account_id: int, *, to: str) -> TestOutcome:
    outcome = await _token_problem(ctx, account_id, "outgoing")
    endpoint, sender = await asyncio.to_thread(_load, ctx, account_id, "outgoing")
    outcome = outcome or await asyncio.to_thread(_refused_host, ctx, endpoint, "outgoing")
    if outcome is None:
        outcome = await conntest.test_outgoing(endpoint, sender=sender, to=to)
    await asyncio.to_thread(record, ctx, account_id, outcome)
    return outcome
