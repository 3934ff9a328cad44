"""``ingest_batch``: many messages from one source with a few commits instead of many.

A mailbox sync fetches messages in batches; storing each one alone costs three or four
commits (each an fsync with SQLite's synchronous=FULL). Here a whole batch takes three:

1. every raw message and its receipt, plus the caller's bookkeeping (``on_stored``: the
   mailbox items and the folder's high-water mark), in one transaction — store first;
2. one claim of all new receipts;
3. the decisions and cases of all of them in one transaction, each message inside its own
   SAVEPOINT, so a message that fails rolls back alone and is retried or quarantined by the
   same rules as ``process_receipt``.

A crash after step 1 leaves receipts in ``received``; after step 2, claims that expire.
Either way the workers process them later: nothing is lost or done twice.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from datetime import timedelta

from sqlalchemy import or_, update
from sqlalchemy.orm import Session

from casemail.db.engine import Database
from casemail.db.models import InboundReceipt
from casemail.db.types import utcnow
from casemail.ingest.pipeline import (
    IngestOptions,
    decide_and_store,
    existing_outcome,
    give_up,
    record_failure,
)
from casemail.ingest.receipt import Receipt, add_receipt
from casemail.ingest.types import IngestResult, Source

log = logging.getLogger("casemail.ingest")

OnStored = Callable[[Session, list[Receipt]], None]


def ingest_batch(
    db: Database,
    channel_id: int,
    items: Sequence[tuple[bytes, Source]],
    *,
    options: IngestOptions | None = None,
    on_stored: OnStored | None = None,
) -> list[IngestResult]:
    """Results in the order of ``items``."""
    options = options or IngestOptions()
    with db.write() as session:
        receipts = [
            add_receipt(session, channel_id=channel_id, raw=raw, source=source)
            for raw, source in items
        ]
        if on_stored is not None:
            on_stored(session, receipts)
    fresh = list(dict.fromkeys(r.inbound_id for r in receipts if not r.duplicate))
    attempts = _claim_all(db, fresh, options)
    decided = _decide_all(db, attempts, options)
    return [_result_for(db, r, decided) for r in receipts]


def _claim_all(db: Database, inbound_ids: list[int], options: IngestOptions) -> dict[int, int]:
    if not inbound_ids:
        return {}
    now = utcnow()
    with db.write() as session:
        rows = session.execute(
            update(InboundReceipt)
            .where(
                InboundReceipt.id.in_(inbound_ids),
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
            .returning(InboundReceipt.id, InboundReceipt.attempts)
        ).all()
    return {int(row[0]): int(row[1]) for row in rows}


def _decide_all(
    db: Database, attempts: dict[int, int], options: IngestOptions
) -> dict[int, IngestResult]:
    # A receipt claimed more often than allowed is one that crashed its workers: give up.
    decided = {i: give_up(db, i) for i, n in attempts.items() if n > options.max_attempts}
    failed: dict[int, Exception] = {}
    with db.write() as session:
        for inbound_id in sorted(i for i in attempts if i not in decided):
            try:
                with session.begin_nested():
                    decided[inbound_id] = decide_and_store(session, inbound_id)
            except Exception as exc:
                log.exception("inbound %s: processing failed in a batch", inbound_id)
                failed[inbound_id] = exc
    for inbound_id, error in failed.items():
        attempt = attempts[inbound_id]
        decided[inbound_id] = record_failure(db, inbound_id, error, attempt, options)
    return decided


def _result_for(db: Database, receipt: Receipt, decided: dict[int, IngestResult]) -> IngestResult:
    if not receipt.duplicate and receipt.inbound_id in decided:
        return decided[receipt.inbound_id]
    # A duplicate, or a receipt another worker holds: report what became of it.
    return existing_outcome(db, receipt.inbound_id)
