"""``ingest_raw``: the one entry point from raw RFC 5322 bytes to a case.

Two transactions. The first commits the raw bytes (``record_receipt``); only then may a
caller acknowledge the message (SMTP 250, IMAP flag, POP3 DELE). The second claims the
receipt, parses it and writes the case. If that fails, or the process dies, the receipt
stays and is claimed again later; after ``max_attempts`` it goes to quarantine with the
error, so one poison message never blocks the rest.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import ColumnElement, or_, select, update
from sqlalchemy.orm import Session

from casemail.db.engine import Database
from casemail.db.models import Channel, InboundReceipt, Message, QuarantineEntry
from casemail.db.types import database_now, utcnow
from casemail.ingest.decide import decide_batch
from casemail.ingest.quarantine import quarantine
from casemail.ingest.receipt import add_receipt, record_receipt
from casemail.ingest.types import IngestResult, Source
from casemail.workers.wakeup import announce

log = logging.getLogger("casemail.ingest")


@dataclass(frozen=True)
class IngestOptions:
    max_attempts: int = 3
    claim_seconds: int = 300


def ingest_raw(
    db: Database,
    channel_id: int,
    raw: bytes,
    source: Source,
    *,
    options: IngestOptions | None = None,
) -> IngestResult:
    receipt = record_receipt(db, channel_id=channel_id, raw=raw, source=source)
    if receipt.duplicate:
        log.info("inbound %s: duplicate, not stored again", receipt.inbound_id)
        return existing_outcome(db, receipt.inbound_id)
    return process_receipt(db, receipt.inbound_id, options or IngestOptions())


def store_for_workers(db: Database, channel_id: int, raw: bytes, source: Source) -> IngestResult:
    """Commit the raw message and leave its processing to the workers, which the commit
    wakes (``workers.wakeup``); they claim it like any receipt waiting (``claim_pending``)."""
    with db.write() as session:
        receipt = add_receipt(session, channel_id=channel_id, raw=raw, source=source)
        if not receipt.duplicate:
            announce(session, "inbound")
    if receipt.duplicate:
        return existing_outcome(db, receipt.inbound_id)
    return IngestResult("pending", receipt.inbound_id)


def _unclaimed(now: datetime) -> ColumnElement[bool]:
    """Never processed, or claimed by a worker that died (its claim ran out)."""
    return or_(
        InboundReceipt.state == "received",
        (InboundReceipt.state == "processing") & (InboundReceipt.claimed_until < now),
    )


def _take(
    session: Session, ids: list[int], now: datetime, options: IngestOptions
) -> dict[int, int]:
    """Claim those of ``ids`` still unclaimed; receipt id -> attempt number."""
    if not ids:
        return {}
    claimed = session.execute(
        update(InboundReceipt)
        .where(InboundReceipt.id.in_(ids), _unclaimed(now))
        .values(
            state="processing",
            attempts=InboundReceipt.attempts + 1,
            claimed_until=now + timedelta(seconds=options.claim_seconds),
        )
        .returning(InboundReceipt.id, InboundReceipt.attempts)
        .execution_options(synchronize_session=False)
    )
    return {int(inbound_id): int(attempts) for inbound_id, attempts in claimed}


def _claim(db: Database, inbound_id: int, options: IngestOptions) -> int | None:
    """Take the receipt for processing; returns the attempt number, or None if taken."""
    with db.write() as session:
        return _take(session, [inbound_id], database_now(session), options).get(inbound_id)


def claim_pending(db: Database, options: IngestOptions, *, limit: int = 100) -> dict[int, int]:
    """Claim up to ``limit`` receipts to (re)process, oldest first; id -> attempt number."""
    with db.write() as session:
        return claim_receipts(session, options, limit=limit)


def claim_receipts(session: Session, options: IngestOptions, *, limit: int) -> dict[int, int]:
    """``claim_pending`` in the caller's transaction. On PostgreSQL the rows other workers
    are claiming are skipped (``SKIP LOCKED``), not waited for: workers on many hosts take
    disjoint sets at once."""
    now = database_now(session)
    ids = session.scalars(
        select(InboundReceipt.id)
        .where(_unclaimed(now))
        .order_by(InboundReceipt.id)
        .limit(limit)
        .with_for_update(skip_locked=True)
    )
    return _take(session, list(ids), now, options)


def process_receipt(db: Database, inbound_id: int, options: IngestOptions) -> IngestResult:
    attempt = _claim(db, inbound_id, options)
    if attempt is None:
        return existing_outcome(db, inbound_id)
    return process_claimed(db, inbound_id, attempt, options)


def process_claimed(
    db: Database, inbound_id: int, attempt: int, options: IngestOptions
) -> IngestResult:
    """Process a receipt this worker has claimed (attempt number ``attempt``)."""
    if attempt > options.max_attempts:
        return give_up(db, inbound_id)
    try:
        with db.write() as session:
            return decide_and_store(session, inbound_id)
    except Exception as exc:
        log.exception("inbound %s: processing failed (attempt %s)", inbound_id, attempt)
        return record_failure(db, inbound_id, exc, attempt, options)


def decide_and_store(session: Session, inbound_id: int) -> IngestResult:
    """Decide one claimed receipt inside the caller's transaction: a batch of one."""
    return decide_batch(session, [inbound_id])[inbound_id]


def record_failure(
    db: Database, inbound_id: int, exc: Exception, attempt: int, options: IngestOptions
) -> IngestResult:
    error = f"{type(exc).__name__}: {exc}"[:2000]
    with db.write() as session:
        receipt = session.get_one(InboundReceipt, inbound_id)
        receipt.last_error = error
        receipt.state = "received"
        receipt.claimed_until = None
    if attempt >= options.max_attempts:
        return give_up(db, inbound_id)
    return IngestResult("pending", inbound_id, reason=error)


def give_up(db: Database, inbound_id: int) -> IngestResult:
    with db.write() as session:
        receipt = session.get_one(InboundReceipt, inbound_id)
        channel = session.get_one(Channel, receipt.channel_id)
        reason = (
            f"Processing failed {receipt.attempts} times; last error: "
            f"{receipt.last_error or 'the worker stopped while processing'}"
        )
        entry = quarantine(
            session, receipt=receipt, channel=channel, code="processing-failed", reason=reason
        )
        return IngestResult("quarantined", inbound_id, quarantine_id=entry.id, reason=reason)


def existing_outcome(db: Database, inbound_id: int) -> IngestResult:
    """What became of a receipt already handled: its case or quarantine entry, else pending."""
    with db.read() as session:
        message = session.scalar(select(Message).where(Message.inbound_id == inbound_id))
        if message is not None:
            return IngestResult(
                "duplicate", inbound_id, case_id=message.case_id, message_pk=message.id
            )
        entry = session.scalar(
            select(QuarantineEntry).where(QuarantineEntry.inbound_id == inbound_id)
        )
        if entry is not None:
            return IngestResult(
                "duplicate", inbound_id, quarantine_id=entry.id, reason=entry.reason
            )
    return IngestResult("pending", inbound_id)


def pending_receipts(db: Database, *, limit: int = 100) -> list[int]:
    """Receipts a worker should (re)process: never processed, or claimed by a dead worker."""
    now = utcnow()
    with db.read() as session:
        return list(
            session.scalars(
                select(InboundReceipt.id)
                .where(_unclaimed(now))
                .order_by(InboundReceipt.id)
                .limit(limit)
            )
        )
