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
from datetime import timedelta

from sqlalchemy import or_, select, update
from sqlalchemy.orm import Session

from casemail.db.blobs import get_blob
from casemail.db.engine import Database
from casemail.db.models import Channel, InboundReceipt, Message, QuarantineEntry
from casemail.db.types import utcnow
from casemail.ingest.parse import parse_message
from casemail.ingest.quarantine import quarantine
from casemail.ingest.receipt import record_receipt
from casemail.ingest.store import append_message, open_case
from casemail.ingest.thread import find_case
from casemail.ingest.types import IngestResult, RuleHit, Source

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


def _claim(db: Database, inbound_id: int, options: IngestOptions) -> int | None:
    """Take the receipt for processing; returns the attempt number, or None if taken."""
    now = utcnow()
    with db.write() as session:
        return session.execute(
            update(InboundReceipt)
            .where(
                InboundReceipt.id == inbound_id,
                or_(
                    InboundReceipt.state == "received",
                    (InboundReceipt.state == "processing") & (InboundReceipt.claimed_until < now),
                ),
            )
            .values(
                state="processing",
                attempts=InboundReceipt.attempts + 1,
                claimed_until=now + timedelta(seconds=options.claim_seconds),
            )
            .returning(InboundReceipt.attempts)
        ).scalar_one_or_none()


def process_receipt(db: Database, inbound_id: int, options: IngestOptions) -> IngestResult:
    attempt = _claim(db, inbound_id, options)
    if attempt is None:
        return existing_outcome(db, inbound_id)
    if attempt > options.max_attempts:
        return give_up(db, inbound_id)
    try:
        with db.write() as session:
            return decide_and_store(session, inbound_id)
    except Exception as exc:
        log.exception("inbound %s: processing failed (attempt %s)", inbound_id, attempt)
        return record_failure(db, inbound_id, exc, attempt, options)


def decide_and_store(session: Session, inbound_id: int) -> IngestResult:
    receipt = session.get_one(InboundReceipt, inbound_id)
    channel = session.get_one(Channel, receipt.channel_id)
    raw = get_blob(session, receipt.raw_sha256)
    refusal = _refusal(channel, raw)
    if refusal is not None:
        entry = quarantine(
            session, receipt=receipt, channel=channel, code=refusal[0], reason=refusal[1]
        )
        return IngestResult("quarantined", inbound_id, quarantine_id=entry.id, reason=refusal[1])
    parsed = parse_message(raw)
    if parsed.sender is None:
        reason = "The message has no usable From address, so no contact can own a case."
        entry = quarantine(
            session, receipt=receipt, channel=channel, code="no-sender", reason=reason
        )
        return IngestResult("quarantined", inbound_id, quarantine_id=entry.id, reason=reason)
    match = find_case(session, channel, parsed)
    case = match.case
    hits = match.hits
    if case is None:
        case = open_case(session, channel, parsed, status="closed" if receipt.archive else "new")
        hits = (*hits, RuleHit("create-case", f"new case #{case.id}"))
        if receipt.archive:
            hits = (*hits, RuleHit("import-archive", "imported as archive: closed, nothing sent"))
        outcome = "created"
    else:
        if case.status == "closed" and not receipt.archive:
            case.status = "open"
            hits = (*hits, RuleHit("reopened", "a reply reopened the closed case"))
        outcome = "appended"
    message = append_message(session, case=case, receipt=receipt, parsed=parsed, hits=hits)
    receipt.state = "done"
    receipt.processed_at = utcnow()
    receipt.claimed_until = None
    receipt.last_error = None
    log.info("inbound %s: %s case #%s", inbound_id, outcome, case.id)
    return IngestResult(
        "created" if outcome == "created" else "appended",
        inbound_id,
        case_id=case.id,
        message_pk=message.id,
        rule_hits=hits,
    )


def _refusal(channel: Channel, raw: bytes) -> tuple[str, str] | None:
    if not raw.strip():
        return "empty-message", "The message is empty (0 bytes of content)."
    if not channel.active:
        return "channel-inactive", f"Channel {channel.address} is inactive."
    return None


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
                .where(
                    or_(
                        InboundReceipt.state == "received",
                        (InboundReceipt.state == "processing")
                        & (InboundReceipt.claimed_until < now),
                    )
                )
                .order_by(InboundReceipt.id)
                .limit(limit)
            )
        )
