"""Stage: hold mail that did not become or join a case, with its reason. Nothing is lost:
the raw bytes stay in the receipt, and an admin can reprocess, assign or discard it."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy.orm import Session

from casemail.db.models import Channel, InboundReceipt, QuarantineEntry
from casemail.db.types import utcnow
from casemail.ingest.notify import notify_quarantine


def quarantine(
    session: Session, *, receipt: InboundReceipt, channel: Channel, code: str, reason: str
) -> QuarantineEntry:
    now = utcnow()
    entry = QuarantineEntry(
        inbound_id=receipt.id,
        channel_id=channel.id,
        reason_code=code,
        reason=reason,
        state="held",
        created_at=now,
        purge_after=now + timedelta(days=channel.purge_days),
    )
    session.add(entry)
    receipt.state = "quarantined"
    receipt.processed_at = now
    receipt.claimed_until = None
    session.flush()
    notify_quarantine(session, channel, entry)
    return entry
