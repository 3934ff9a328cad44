"""What an admin does with a quarantined message: reprocess it, assign it to a case, or
discard it. The raw message is never touched; each action is recorded on the entry.

Reprocessing sends the message through the pipeline again as it stands now (rules changed,
sender added as a contact, rate limit expired): it becomes or joins a case, or is held
again with its new reason. Assigning does the same with the admin's choice of case, which
overrides the rules.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy.orm import Session

from casemail.db.engine import Database
from casemail.db.models import Case, InboundReceipt, QuarantineEntry
from casemail.db.types import utcnow
from casemail.ingest.pipeline import IngestOptions, process_receipt
from casemail.ingest.types import IngestResult


class QuarantineError(ValueError):
    def __init__(self, message: str, *, status: int = 409) -> None:
        super().__init__(message)
        self.status = status


@dataclass(frozen=True)
class Released:
    inbound_id: int


def held_entry(session: Session, entry_id: int) -> QuarantineEntry:
    entry = session.get(QuarantineEntry, entry_id)
    if entry is None:
        raise QuarantineError(f"no quarantine entry {entry_id}", status=404)
    if entry.state != "held":
        raise QuarantineError(f"quarantine entry {entry_id} is {entry.state}, not held")
    return entry


def release(session: Session, entry_id: int, *, assign_case_id: int | None = None) -> Released:
    """Mark the entry released and its receipt ready for the pipeline (in the caller's
    transaction, which may be scoped to a company: a case of another company is not found).
    ``process_released`` then runs the pipeline, after the commit."""
    entry = held_entry(session, entry_id)
    receipt = session.get_one(InboundReceipt, entry.inbound_id)
    if assign_case_id is not None:
        case = session.get(Case, assign_case_id)
        if case is None or case.deleted_at is not None:
            raise QuarantineError(f"no case {assign_case_id}", status=404)
        receipt.assign_case_id = case.id
    entry.state = "released"
    receipt.state = "received"
    receipt.attempts = 0
    receipt.claimed_until = None
    receipt.last_error = None
    session.flush()
    return Released(receipt.id)


def process_released(db: Database, released: Released, options: IngestOptions) -> IngestResult:
    return process_receipt(db, released.inbound_id, options)


def discard(session: Session, entry_id: int) -> QuarantineEntry:
    """Keep the message out for good; its raw bytes go with the entry at the purge."""
    entry = held_entry(session, entry_id)
    receipt = session.get_one(InboundReceipt, entry.inbound_id)
    entry.state = "discarded"
    receipt.state = "discarded"
    receipt.processed_at = utcnow()
    session.flush()
    return entry
