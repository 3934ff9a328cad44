"""ingest_batch: the same outcomes as ingest_raw, message by message, with fewer commits."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from sqlalchemy import event, func, select
from sqlalchemy.orm import Session

from casemail.channels.service import add_channel
from casemail.db import Database
from casemail.db.models import Case, InboundReceipt, Message, QuarantineEntry
from casemail.ingest import IngestOptions, Source, pending_receipts, process_receipt
from casemail.ingest.batch import ingest_batch
from casemail.ingest.receipt import Receipt
from tests.support import sample_message, wire_bytes


class FailsOnSubject(Database):
    """Our Database on the same engine; storing a message with this subject always fails,
    as a row the database refuses would."""

    def __init__(self, db: Database, subject: str) -> None:
        super().__init__(db.engine)
        self.subject = subject

    @contextmanager
    def write(self) -> Iterator[Session]:
        with super().write() as session:
            event.listen(session, "before_flush", self._check)
            yield session

    def _check(self, session: Session, _context: Any, _instances: Any) -> None:
        for obj in session.new:
            if isinstance(obj, Message) and obj.subject == self.subject:
                raise RuntimeError("simulated refusal of one message")


def count(db: Database, model: type[Any]) -> int:
    with db.read() as session:
        return int(session.scalar(select(func.count()).select_from(model)) or 0)


def test_batch_threads_dedupes_and_isolates_a_failing_message(db: Database) -> None:
    with db.write() as session:
        channel = add_channel(session, address="support@example.com").id
    first = sample_message(subject="Printer on fire")
    reply = sample_message(subject="Re: Printer on fire", in_reply_to=first["Message-ID"])
    poison = sample_message(subject="poison")
    other = sample_message(subject="Invoice", sender="bob@other.example")
    raws = [wire_bytes(m) for m in (first, reply, poison, other)]
    items = [(raw, Source("imap")) for raw in [*raws, raws[0]]]  # the first one twice
    seen: list[list[Receipt]] = []

    flaky = FailsOnSubject(db, "poison")
    results = ingest_batch(
        flaky,
        channel,
        items,
        options=IngestOptions(max_attempts=2),
        on_stored=lambda _session, receipts: seen.append(receipts),
    )

    assert [r.outcome for r in results] == [
        "created",
        "appended",
        "pending",
        "created",
        "duplicate",
    ]
    assert results[1].case_id == results[0].case_id
    assert results[4].inbound_id == results[0].inbound_id
    assert [r.duplicate for r in seen[0]] == [False, False, False, False, True]
    assert count(db, InboundReceipt) == 4  # the poison message is stored all the same
    assert (count(db, Case), count(db, Message)) == (2, 3)

    again = ingest_batch(
        flaky, channel, [(raws[2], Source("imap"))], options=IngestOptions(max_attempts=2)
    )
    # Already stored and waiting for its retry: reported as pending, not stored again.
    assert again[0].outcome == "pending"
    assert count(db, InboundReceipt) == 4

    [pending] = pending_receipts(db)
    final = process_receipt(flaky, pending, IngestOptions(max_attempts=2))
    assert final.outcome == "quarantined"
    assert count(db, QuarantineEntry) == 1
    assert count(db, InboundReceipt) == count(db, Message) + count(db, QuarantineEntry)
