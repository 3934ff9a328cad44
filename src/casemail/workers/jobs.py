"""Periodic jobs. Each is a plain function of the database, so tests call them directly."""

from __future__ import annotations

import logging

from sqlalchemy import ColumnElement, delete, exists, or_, select
from sqlalchemy.orm import Session

from casemail.db.engine import Database
from casemail.db.models import (
    Attachment,
    Blob,
    InboundReceipt,
    Message,
    OutboxEntry,
    QuarantineEntry,
)
from casemail.db.types import utcnow
from casemail.ingest import IngestOptions
from casemail.ingest.pipeline import claim_pending, process_claimed

log = logging.getLogger("casemail.workers")


REPROCESS_BATCH = 100


def reprocess_pending(db: Database, options: IngestOptions, *, limit: int = REPROCESS_BATCH) -> int:
    """Process receipts that were stored but not (or not completely) processed: claimed
    together (``SKIP LOCKED`` on PostgreSQL), so workers never wait for each other."""
    claimed = claim_pending(db, options, limit=limit)
    for inbound_id, attempt in claimed.items():
        result = process_claimed(db, inbound_id, attempt, options)
        log.info("reprocessed inbound %s: %s", inbound_id, result.outcome)
    return len(claimed)


def _blob_unreferenced(sha: str) -> ColumnElement[bool]:
    return ~or_(
        exists().where(InboundReceipt.raw_sha256 == sha),
        exists().where(Message.raw_sha256 == sha),
        exists().where(Attachment.sha256 == sha),
        exists().where(OutboxEntry.raw_sha256 == sha),
    )


def _purge_one(session: Session, entry: QuarantineEntry) -> None:
    receipt = session.get_one(InboundReceipt, entry.inbound_id)
    raw_sha = receipt.raw_sha256
    session.delete(entry)
    session.flush()
    session.delete(receipt)
    session.flush()
    session.execute(delete(Blob).where(Blob.sha256 == raw_sha, _blob_unreferenced(raw_sha)))


def purge_quarantine(db: Database, *, limit: int = 500) -> int:
    """Delete quarantined mail whose channel's purge period has passed."""
    with db.write() as session:
        entries = list(
            session.scalars(
                select(QuarantineEntry)
                .where(QuarantineEntry.purge_after < utcnow())
                .order_by(QuarantineEntry.id)
                .limit(limit)
            )
        )
        for entry in entries:
            _purge_one(session, entry)
    if entries:
        log.info("purged %d quarantined messages past their purge date", len(entries))
    return len(entries)
