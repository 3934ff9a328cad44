"""Stage: hold mail that did not become or join a case, with its reason. Nothing is lost:
the raw bytes stay in the receipt, and an admin can reprocess, assign or discard it."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session

from casemail.db.models import Channel, InboundReceipt, QuarantineEntry
from casemail.db.types import utcnow
from casemail.ingest.notify import notify_quarantine


def quarantine(
    session: Session,
    *,
    receipt: InboundReceipt,
    channel: Channel,
    code: str,
    reason: str,
    person: str | None = None,
) -> QuarantineEntry:
    """``person``: the sender of a message a person wrote (normal mail, not over the rate
    limit), whom the notice may copy (the channel's ``cc_sender_on_quarantine``)."""
    now = utcnow()
    # A message an admin sent back through the pipeline has its entry already: it is held
    # again, with the new reason (one entry per message, its latest verdict).
    entry = session.scalar(select(QuarantineEntry).where(QuarantineEntry.inbound_id == receipt.id))
    if entry is None:
        entry = QuarantineEntry(inbound_id=receipt.id, channel_id=channel.id)
        session.add(entry)
    entry.reason_code = code
    entry.reason = reason
    entry.state = "held"
    entry.created_at = now
    entry.purge_after = now + timedelta(days=channel.purge_days)
    receipt.state = "quarantined"
    receipt.processed_at = now
    receipt.claimed_until = None
    session.flush()
    notify_quarantine(session, channel, entry, person=person)
    return entry
