"""The sending worker: claim due outbox entries, deliver them per account (one connection
per account, accounts in parallel), record each outcome.

Outcomes: ``sent``; a temporary failure goes back to ``ready`` with a growing back-off
until the entry's give-up time, then ``error``; a permanent failure (5xx) is ``error`` at
once. The reason is kept in the SMTP server's own words (``last_code``, ``last_error``) and
shown on the case's email history.
"""

from __future__ import annotations

import asyncio
import logging
from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from casemail.accounts.endpoint import Endpoint
from casemail.accounts.endpoints import incoming_endpoint, outgoing_endpoint
from casemail.accounts.rules import AccountError
from casemail.accounts.secrets import KeyRing, SecretsError
from casemail.accounts.service import stored_secrets
from casemail.config import Settings
from casemail.db.blobs import get_blobs
from casemail.db.engine import Database
from casemail.db.models import Account, Case, Message, OutboxEntry
from casemail.db.types import database_now, utcnow
from casemail.oauth.tokens import TokenError, ensure_access_token
from casemail.outbound.claims import claim_due, mine, start_transmitting
from casemail.outbound.sentcopy import append_to_sent, wanted_folder
from casemail.outbound.smtp import Delivery, DeliveryResult, OnResult, OnStart, deliver_all
from casemail.webhooks.events import Event, emit

log = logging.getLogger("casemail.outbound")

# Back-off after the n-th failed attempt; the last step repeats (RFC 5321 section 4.5.4.1
# suggests at least 30 minutes between retries once the first quick ones fail).
BACKOFF = (
    timedelta(minutes=1),
    timedelta(minutes=5),
    timedelta(minutes=15),
    timedelta(minutes=30),
    timedelta(hours=1),
    timedelta(hours=2),
)


def backoff(attempts: int) -> timedelta:
    return BACKOFF[min(max(attempts, 1), len(BACKOFF)) - 1]


@dataclass(frozen=True)
class Batch:
    endpoint_error: str | None
    account_id: int
    endpoint: Endpoint | None
    deliveries: list[Delivery]
    sent_copy: tuple[Endpoint, str] | None = None  # (incoming IMAP, Sent folder)


async def send_due(
    db: Database, settings: Settings, keys: KeyRing, *, now: datetime | None = None
) -> int:
    """One round: claim, deliver, record. Returns how many entries were handled."""
    claim = timedelta(seconds=settings.outbox_claim_seconds)
    with db.write() as session:
        # The database's clock: a claim written on one host is judged expired on another.
        when = now or database_now(session)
        claims = dict(claim_due(session, now=when, claim=claim, limit=settings.outbox_claim_batch))
    if not claims:
        return 0
    token_errors = await asyncio.to_thread(_fresh_tokens, db, keys, claims)
    batches = _batches(db, settings, keys, claims, token_errors)

    async def on_start(delivery: Delivery) -> bool:
        return await asyncio.to_thread(_start_one, db, delivery.outbox_id, claims)

    def on_result_of(batch: Batch) -> OnResult:
        raws = {d.outbox_id: d.raw for d in batch.deliveries}

        async def on_result(result: DeliveryResult) -> None:
            await asyncio.to_thread(_record_one, db, result, claims[result.outbox_id])
            if result.outcome == "sent" and batch.sent_copy is not None:
                endpoint, folder = batch.sent_copy
                failed = await asyncio.to_thread(
                    append_to_sent, endpoint, folder, raws[result.outbox_id]
                )
                if failed:
                    await asyncio.to_thread(_note, db, result.outbox_id, failed)

        return on_result

    timeout = settings.outbox_data_timeout_seconds
    await asyncio.gather(*(_deliver(b, timeout, on_start, on_result_of(b)) for b in batches))
    return len(claims)


def _note(db: Database, outbox_id: int, words: str) -> None:
    """A remark on a sent entry (its state stays ``sent``)."""
    log.warning("outbox %s: %s", outbox_id, words)
    with db.write() as session:
        entry = session.get_one(OutboxEntry, outbox_id)
        entry.last_error = f"Sent; {words}"


def _start_one(db: Database, outbox_id: int, claims: dict[int, datetime]) -> bool:
    with db.write() as session:
        return start_transmitting(session, outbox_id, claims[outbox_id])


def _record_one(db: Database, result: DeliveryResult, claim: datetime) -> None:
    with db.write() as session:
        record(session, result, claim)


def _fresh_tokens(db: Database, keys: KeyRing, claims: dict[int, datetime]) -> dict[int, str]:
    """Refresh the OAuth2 tokens of the accounts about to send; why not, by account."""
    with db.read() as session:
        query = select(OutboxEntry.account_id).where(OutboxEntry.id.in_(claims)).distinct()
        account_ids = [a for a in session.scalars(query) if a is not None]
    errors: dict[int, str] = {}
    for account_id in account_ids:
        try:
            ensure_access_token(db, keys, account_id)
        except TokenError as exc:
            errors[account_id] = str(exc)
    return errors


def _batches(
    db: Database,
    settings: Settings,
    keys: KeyRing,
    claims: dict[int, datetime],
    token_errors: dict[int, str],
) -> list[Batch]:
    with db.read() as session:
        entries = list(
            session.scalars(
                select(OutboxEntry).where(OutboxEntry.id.in_(claims)).order_by(OutboxEntry.id)
            )
        )
        raws = get_blobs(session, [e.raw_sha256 for e in entries if e.raw_sha256])
        by_account: dict[int, list[OutboxEntry]] = defaultdict(list)
        for entry in entries:
            assert entry.account_id is not None  # claimed only with an account
            by_account[entry.account_id].append(entry)
        batches = []
        for account_id, group in by_account.items():
            batch = _batch(session.get_one(Account, account_id), group, raws, settings, keys)
            if account_id in token_errors:
                batch = Batch(token_errors[account_id], account_id, None, batch.deliveries)
            batches.append(batch)
        return batches


def _batch(
    account: Account,
    entries: list[OutboxEntry],
    raws: dict[str, bytes],
    settings: Settings,
    keys: KeyRing,
) -> Batch:
    deliveries = [
        Delivery(e.id, e.envelope_from or account.email, tuple(e.recipients), raws[e.raw_sha256])
        for e in entries
        if e.raw_sha256
    ]
    try:
        endpoint = outgoing_endpoint(
            account, stored_secrets(account, keys), ca_file=settings.tls_ca_file
        )
    except (AccountError, SecretsError) as exc:
        return Batch(f"account #{account.id} cannot send: {exc}", account.id, None, deliveries)
    if account.deactivated_at is not None or not account.outgoing_active:
        reason = f"account #{account.id} ({account.email}) is not active for sending"
        return Batch(reason, account.id, None, deliveries)
    return Batch(None, account.id, endpoint, deliveries, _sent_copy(account, settings, keys))


def _sent_copy(account: Account, settings: Settings, keys: KeyRing) -> tuple[Endpoint, str] | None:
    folder = wanted_folder(account.settings)
    if folder is None:
        return None
    secrets = stored_secrets(account, keys)
    return incoming_endpoint(account, secrets, ca_file=settings.tls_ca_file), folder


async def _deliver(
    batch: Batch, data_timeout: float, on_start: OnStart, on_result: OnResult
) -> None:
    if batch.endpoint is None:
        for delivery in batch.deliveries:
            reason = batch.endpoint_error or "no endpoint"
            await on_result(DeliveryResult(delivery.outbox_id, "retry", None, reason))
        return
    await deliver_all(
        batch.endpoint,
        batch.deliveries,
        data_timeout=data_timeout,
        on_start=on_start,
        on_result=on_result,
    )


def record(session: Session, result: DeliveryResult, claim: datetime) -> None:
    """Write one outcome, only where the entry still carries this sender's claim."""
    entry = session.get_one(OutboxEntry, result.outbox_id)
    if not mine(entry, claim):
        log.warning("outbox %s: claim lost before the result was written", entry.id)
        return
    now = utcnow()
    entry.claimed_until = None
    entry.transmitting_since = None
    entry.last_code = result.code
    entry.updated_at = now
    if result.uncertain:
        entry.maybe_duplicate = True
    if result.outcome == "sent":
        _sent(session, entry, result, now)
    elif result.outcome == "failed":
        entry.state = "error"
        entry.last_error = f"Permanent failure: {result.text}"
    elif entry.give_up_at is not None and now >= entry.give_up_at:
        entry.state = "error"
        entry.last_error = f"Gave up after {entry.attempts} attempts: {result.text}"
    else:
        entry.state = "ready"
        entry.next_attempt_at = now + backoff(entry.attempts)
        entry.last_error = f"Temporary failure, retrying: {result.text}"
    log.info("outbox %s: %s (%s)", entry.id, entry.state, result.text)
    if entry.state in ("sent", "error"):
        _announce(session, entry)


def _announce(session: Session, entry: OutboxEntry) -> None:
    """message.sent / message.failed for the company's webhooks."""
    company = _company_of(session, entry)
    if company is None:
        return
    message = {
        "outbox_id": entry.id,
        "case_id": entry.case_id,
        "message_id": entry.message_id,
        "subject": entry.subject,
        "recipients": list(entry.recipients),
        "kind": entry.kind,
    }
    if entry.state == "sent":
        emit(session, [Event(company, "message.sent", {"message": message})])
    else:
        error = {"error": entry.last_error}
        emit(session, [Event(company, "message.failed", {"message": message, **error})])


def _company_of(session: Session, entry: OutboxEntry) -> int | None:
    if entry.account_id is not None:
        return session.scalar(select(Account.company_id).where(Account.id == entry.account_id))
    if entry.case_id is not None:
        return session.scalar(select(Case.company_id).where(Case.id == entry.case_id))
    return None


def _sent(session: Session, entry: OutboxEntry, result: DeliveryResult, now: datetime) -> None:
    entry.state = "sent"
    entry.sent_at = now
    entry.last_error = f"Some recipients refused: {result.text}" if result.refused else None
    session.execute(
        update(Message)
        .where(Message.message_id == entry.message_id, Message.direction == "outbound")
        .values(sent_at=now)
    )
