"""``ingest_batch``: many messages from one source with two commits instead of many.

A mailbox sync fetches messages in batches; storing each one alone costs three or four
commits (each an fsync with SQLite's synchronous=FULL). Here a whole batch takes two:

1. every raw message and its receipt, stored already claimed by this call, plus the
   caller's bookkeeping (``on_stored``: the mailbox items and the folder's high-water
   mark), in one transaction — store first;
2. the decisions and cases of all of them, written together (``decide.decide_batch``); if
   that fails, each message again alone inside its own SAVEPOINT, so the one that fails
   rolls back alone and is retried or quarantined by the same rules as ``process_receipt``.

A crash after step 1 leaves claims that expire; the workers then process those receipts
as they would any other: nothing is lost or done twice.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from datetime import timedelta

from sqlalchemy.orm import Session

from casemail.db.engine import Database
from casemail.ingest.decide import Preloaded, decide_batch
from casemail.ingest.pipeline import (
    IngestOptions,
    decide_and_store,
    existing_outcome,
    give_up,
    record_failure,
)
from casemail.ingest.receipt import Receipt, add_receipts
from casemail.ingest.types import ClaimedReceipt, IngestResult, Source

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
    claim = timedelta(seconds=options.claim_seconds)
    with db.write() as session:
        # Stored already claimed by this call (attempt 1): one commit fewer per batch. If
        # the process dies now, the claims expire and a worker takes the receipts then.
        receipts = add_receipts(session, channel_id=channel_id, items=items, claim_for=claim)
        if on_stored is not None:
            on_stored(session, receipts)
    preloaded: Preloaded = {
        r.inbound_id: (_claimed(channel_id, r.inbound_id, r.raw_sha256, source), raw)
        for r, (raw, source) in zip(receipts, items, strict=True)
        if r.raw_sha256 is not None
    }
    decided = _decide_all(db, dict.fromkeys(preloaded, 1), options, preloaded)
    return [_result_for(db, r, decided) for r in receipts]


def _claimed(channel_id: int, inbound_id: int, raw_sha256: str, source: Source) -> ClaimedReceipt:
    """What ``add_receipts`` stored for one message, as the decide stage reads it back."""
    envelope = tuple(source.envelope_to)
    return ClaimedReceipt(inbound_id, channel_id, raw_sha256, source.archive, envelope)


def _decide_all(
    db: Database,
    attempts: dict[int, int],
    options: IngestOptions,
    preloaded: Preloaded | None = None,
) -> dict[int, IngestResult]:
    # A receipt claimed more often than allowed is one that crashed its workers: give up.
    decided = {i: give_up(db, i) for i, n in attempts.items() if n > options.max_attempts}
    todo = sorted(i for i in attempts if i not in decided)
    failed: dict[int, Exception] = {}
    with db.write() as session:
        try:
            with session.begin_nested():
                decided.update(decide_batch(session, todo, preloaded))
        except Exception:  # noqa: BLE001 - any failure: isolate it below
            # Some message of the batch fails: find it by deciding them one by one, each
            # in its own SAVEPOINT, so it rolls back alone and the rest are stored.
            log.warning("a batch of %s failed; deciding its messages one by one", len(todo))
            session.expunge_all()
            for inbound_id in todo:
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
