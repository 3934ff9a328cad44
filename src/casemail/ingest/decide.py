"""Decide and store claimed receipts: many messages with a handful of statements.

``decide_batch`` reads everything a batch needs at once (receipts, raw bytes, channels, the
cases its messages refer to, its senders' contacts), decides the messages in order (so a
reply later in the batch threads onto a case opened earlier in it), and writes each table
with batched INSERTs and UPDATEs in three flushes. A single message is a batch of one: the
SMTP listener and a mailbox sync run the same code.

The caller owns the transaction; if anything raises, nothing of the batch is kept, and the
caller retries the messages one by one to find the one that fails.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from sqlalchemy import Table, bindparam, insert, select, update
from sqlalchemy.orm import Session

from casemail.db.blobs import get_blobs, put_blobs
from casemail.db.models import Attachment, Channel, InboundReceipt
from casemail.db.types import utcnow
from casemail.ingest.parse import parse_message
from casemail.ingest.quarantine import quarantine
from casemail.ingest.store import (
    AnyCase,
    ContactBook,
    NewCase,
    attachment_rows,
    insert_cases,
    insert_messages,
    message_row,
    new_case,
)
from casemail.ingest.thread import ThreadLookups
from casemail.ingest.types import ClaimedReceipt, IngestResult, ParsedMessage, RuleHit

log = logging.getLogger("casemail.ingest")

NO_SENDER = "The message has no usable From address, so no contact can own a case."
ARCHIVED = RuleHit("import-archive", "imported as archive: closed, nothing sent")


@dataclass
class _Work:
    receipt: ClaimedReceipt
    channel: Channel
    parsed: ParsedMessage
    case: AnyCase | None = None
    hits: tuple[RuleHit, ...] = ()
    created: bool = False
    message_pk: int | None = None


def decide_batch(session: Session, inbound_ids: list[int]) -> dict[int, IngestResult]:
    columns = (
        InboundReceipt.id,
        InboundReceipt.channel_id,
        InboundReceipt.raw_sha256,
        InboundReceipt.archive,
    )
    query = select(*columns).where(InboundReceipt.id.in_(inbound_ids)).order_by(InboundReceipt.id)
    receipts = [ClaimedReceipt(*row) for row in session.execute(query)]
    channel_ids = {r.channel_id for r in receipts}
    channels = {
        c.id: c for c in session.scalars(select(Channel).where(Channel.id.in_(channel_ids)))
    }
    raws = get_blobs(session, [r.raw_sha256 for r in receipts])
    results: dict[int, IngestResult] = {}
    work: list[_Work] = []
    for receipt in receipts:
        item = _parse_or_refuse(session, receipt, channels[receipt.channel_id], raws, results)
        if item is not None:
            work.append(item)
    if work:
        _decide(session, work)
        _write(session, work)
        results.update(_result(item) for item in work)
    return results


def _parse_or_refuse(
    session: Session,
    receipt: ClaimedReceipt,
    channel: Channel,
    raws: dict[str, bytes],
    results: dict[int, IngestResult],
) -> _Work | None:
    raw = raws.get(receipt.raw_sha256)
    if raw is None:
        raise LookupError(f"blob {receipt.raw_sha256} of inbound {receipt.id} is missing")
    parsed: ParsedMessage | None = None
    refusal = _refusal(channel, raw)
    if refusal is None:
        parsed = parse_message(raw)
        if parsed.sender is None:
            refusal = ("no-sender", NO_SENDER)
    if refusal is not None:
        held = session.get_one(InboundReceipt, receipt.id)
        entry = quarantine(
            session, receipt=held, channel=channel, code=refusal[0], reason=refusal[1]
        )
        results[receipt.id] = IngestResult(
            "quarantined", receipt.id, quarantine_id=entry.id, reason=refusal[1]
        )
        return None
    assert parsed is not None
    return _Work(receipt, channel, parsed)


def _refusal(channel: Channel, raw: bytes) -> tuple[str, str] | None:
    if not raw.strip():
        return "empty-message", "The message is empty (0 bytes of content)."
    if not channel.active:
        return "channel-inactive", f"Channel {channel.address} is inactive."
    return None


def _decide(session: Session, work: list[_Work]) -> None:
    """Thread each message onto a case, or open one; in order, remembering each."""
    lookups = ThreadLookups.load(session, [(w.channel, w.parsed) for w in work])
    contacts = ContactBook.load(
        session, [(w.channel.company_id, w.parsed.sender) for w in work if w.parsed.sender]
    )
    for item in work:
        assert item.parsed.sender is not None  # refused before
        contact = contacts.contact_for(item.channel.company_id, item.parsed.sender)
        match = lookups.find_case(item.channel, item.parsed)
        item.case, item.hits = match.case, match.hits
        archive = item.receipt.archive
        if item.case is None:
            item.case = new_case(
                item.channel, item.parsed, contact, status="closed" if archive else "new"
            )
            item.created = True
        elif item.case.status == "closed" and not archive:
            item.case.status = "open"
            item.hits += (RuleHit("reopened", "a reply reopened the closed case"),)
        lookups.remember(item.parsed.message_id, item.case)


def _write(session: Session, work: list[_Work]) -> None:
    # The new cases first, so their ids can go on the messages.
    insert_cases(session, [item.case for item in work if isinstance(item.case, NewCase)])
    rows = []
    for item in work:
        assert item.case is not None
        if item.created:
            item.hits += (RuleHit("create-case", f"new case #{item.case.id}"),)
            if item.receipt.archive:
                item.hits += (ARCHIVED,)
        rows.append(
            message_row(case=item.case, receipt=item.receipt, parsed=item.parsed, hits=item.hits)
        )
    message_of = insert_messages(session, rows)
    parts = [part.data for item in work for part in item.parsed.attachments]
    digests = iter(put_blobs(session, parts)) if parts else iter(())
    attachments = []
    for item in work:
        item.message_pk = message_of[item.receipt.id]
        mine = [next(digests) for _ in item.parsed.attachments]
        attachments += attachment_rows(item.message_pk, item.parsed, mine)
    if attachments:
        session.execute(insert(Attachment.__table__), attachments)  # type: ignore[arg-type]
    _mark_done(session, [item.receipt.id for item in work])
    session.flush()


def _mark_done(session: Session, inbound_ids: list[int]) -> None:
    table: Table = InboundReceipt.__table__  # type: ignore[assignment]
    done = (
        update(table)
        .where(table.c.id == bindparam("done_id"))
        .values(
            state="done", processed_at=bindparam("done_at"), claimed_until=None, last_error=None
        )
    )
    now = utcnow()
    session.execute(done, [{"done_id": i, "done_at": now} for i in inbound_ids])


def _result(item: _Work) -> tuple[int, IngestResult]:
    assert item.case is not None
    assert item.message_pk is not None
    log.info(
        "inbound %s: %s case #%s",
        item.receipt.id,
        "created" if item.created else "appended to",
        item.case.id,
    )
    return item.receipt.id, IngestResult(
        "created" if item.created else "appended",
        item.receipt.id,
        case_id=item.case.id,
        message_pk=item.message_pk,
        rule_hits=item.hits,
    )
