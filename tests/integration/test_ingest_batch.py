"""ingest_batch: the same outcomes as ingest_raw, message by message, with fewer commits."""

from __future__ import annotations

from typing import Any

from sqlalchemy import func, select

from casemail.channels.service import add_channel
from casemail.db import Database
from casemail.db.models import Case, InboundReceipt, Message, QuarantineEntry
from casemail.ingest import IngestOptions, Source, pending_receipts, process_receipt
from casemail.ingest.batch import ingest_batch
from casemail.ingest.receipt import Receipt
from tests.support import FailingMessageWrites, sample_message, wire_bytes


def FailsOnSubject(db: Database, subject: str) -> FailingMessageWrites:
    """Storing a message with this subject always fails, as a row the database refuses would."""
    return FailingMessageWrites(
        db, lambda row: row.get("subject") == subject, error="simulated refusal of one message"
    )


def count(db: Database, model: type[Any]) -> int:
    with db.read() as session:
        return int(session.scalar(select(func.count()).select_from(model)) or 0)


def test_replies_in_the_batch_of_their_first_message_make_one_case(db: Database) -> None:
    """The whole batch in one pass (nothing fails): a case opened in the batch is inserted
    once, however many of its replies follow in the same batch."""
    with db.write() as session:
        channel = add_channel(session, address="support@example.com").id
    first = sample_message(subject="Printer on fire")
    replies = [
        sample_message(subject="Re: Printer on fire", in_reply_to=first["Message-ID"])
        for _ in range(3)
    ]
    results = ingest_batch(
        db, channel, [(wire_bytes(m), Source("imap")) for m in (first, *replies)]
    )
    assert [r.outcome for r in results] == ["created"] + ["appended"] * 3
    assert {r.case_id for r in results} == {results[0].case_id}
    assert (count(db, Case), count(db, Message)) == (1, 4)
    later = sample_message(subject="[Case #1] still burning")
    tagged = ingest_batch(db, channel, [(wire_bytes(later), Source("imap"))])
    assert tagged[0].case_id == results[0].case_id  # case numbers are not skipped


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


def test_batched_receipts_are_those_of_one_by_one(db: Database) -> None:
    """A copy inside the batch and a copy stored earlier are both duplicates of the first
    receipt; everything else gets its own, in the order given."""
    from casemail.ingest.receipt import add_receipts, record_receipt

    with db.write() as session:
        channel = add_channel(session, address="support@example.com").id
    earlier, new, other = (wire_bytes(sample_message(subject=s)) for s in ("a", "b", "c"))
    stored = record_receipt(db, channel_id=channel, raw=earlier, source=Source("smtp"))
    with db.write() as session:
        receipts = add_receipts(
            session,
            channel_id=channel,
            items=[(raw, Source("imap")) for raw in (new, earlier, new, other)],
        )
    assert [r.duplicate for r in receipts] == [False, True, True, False]
    assert receipts[1].inbound_id == stored.inbound_id
    assert receipts[2].inbound_id == receipts[0].inbound_id
    assert len({receipts[0].inbound_id, receipts[3].inbound_id, stored.inbound_id}) == 3
    assert count(db, InboundReceipt) == 3
