"""Stage: store. Write the cases, messages and attachments of a batch's messages that made
or joined a case, with batched statements, and queue their acknowledgements.

A bounce that reports on one of our outbound messages marks that message ``error`` with the
reason in plain words (RFC 3464 status and diagnostic) and is kept on the same case.
"""

from __future__ import annotations

import logging

from sqlalchemy import Table, insert, select, update
from sqlalchemy.orm import Session

from casemail.db.blobs import put_blobs
from casemail.db.models import Attachment, Case, InboundReceipt, OutboxEntry
from casemail.db.types import utcnow
from casemail.identity import Identity
from casemail.ingest import notify
from casemail.ingest.dsn import BounceReport
from casemail.ingest.outcomes import ARCHIVED, Work
from casemail.ingest.store import (
    NewCase,
    attachment_rows,
    insert_cases,
    insert_messages,
    message_row,
)
from casemail.ingest.types import IngestResult, RuleHit
from casemail.webhooks.events import Event, emit, subscribed

log = logging.getLogger("casemail.ingest")

IDS_PER_QUERY = 500  # values per IN (...) list


def write_batch(session: Session, work: list[Work], identity: Identity) -> dict[int, IngestResult]:
    """Write the cases, messages and attachments of the items that made or joined a case."""
    kept = [item for item in work if item.case is not None]
    # Only the message that opened a case inserts it: replies later in the batch point at
    # the same NewCase, which must not be inserted once per reply.
    new_cases = [item.case for item in kept if item.created and isinstance(item.case, NewCase)]
    insert_cases(session, new_cases)
    _link_new_cases(session, kept)
    reported = _bounced_outbox(session, kept)
    rows = []
    for item in kept:
        assert item.case is not None
        _acknowledge(session, item, identity)
        if item.created:
            item.hits += (RuleHit("create-case", f"new case #{item.case.id}"),)
            if item.receipt.archive:
                item.hits += (ARCHIVED,)
        rows.append(
            message_row(
                case=item.case,
                receipt=item.receipt,
                parsed=item.parsed,
                hits=item.hits,
                classification=item.classification.kind,
                reports_on_outbox_id=reported.get(item.receipt.id),
            )
        )
    message_of = insert_messages(session, rows) if rows else {}
    _attachments(session, kept, message_of)
    _mark_done(session, [item.receipt.id for item in kept])
    hooks = subscribed(session, {item.channel.company_id for item in kept}) if kept else []
    if hooks:  # the events are built only when a webhook listens: this is the ingest path
        emit(session, _events(kept, reported), hooks)
    session.flush()
    return {item.receipt.id: _result(item) for item in work}


def _events(kept: list[Work], reported: dict[int, int]) -> list[Event]:
    """What the company's webhooks hear of this batch: new cases, messages received, and
    outbound messages a bounce marked failed."""
    events: list[Event] = []
    for item in kept:
        assert item.case is not None
        company = item.channel.company_id
        case = {"id": item.case.id, "subject": item.case.subject, "channel_id": item.channel.id}
        if item.created:
            contact = {"email": item.sender.email, "name": item.sender.name}
            events.append(Event(company, "case.created", {"case": {**case, "contact": contact}}))
        message = {
            "id": item.message_pk,
            "case_id": item.case.id,
            "subject": item.parsed.subject,
            "from": item.sender.email,
            "classification": item.classification.kind,
        }
        events.append(Event(company, "message.received", {"message": message}))
        if item.receipt.id in reported:
            failed = {"outbox_id": reported[item.receipt.id], "case_id": item.case.id}
            error = {"error": "bounced", "bounce_message_id": item.message_pk}
            events.append(Event(company, "message.failed", {"message": failed, **error}))
    return events


def _link_new_cases(session: Session, kept: list[Work]) -> None:
    """New cases linked to a case opened earlier in the same batch get its id now."""
    for item in kept:
        linked = item.route.linked if item.route else None
        if item.created and isinstance(linked, NewCase) and isinstance(item.case, NewCase):
            session.execute(
                update(Case).where(Case.id == item.case.id).values(linked_case_id=linked.id)
            )


def _bounced_outbox(session: Session, kept: list[Work]) -> dict[int, int]:
    """Mark the outbound messages that failed bounces report on; returns outbox id by
    inbound id, for the bounce's own history entry."""
    bounces = [
        item
        for item in kept
        if item.classification.bounce is not None and item.classification.bounce.failed
    ]
    ids = {i for item in bounces for i in item.classification.bounce.original_message_ids}  # type: ignore[union-attr]
    if not ids:
        return {}
    entries = session.scalars(select(OutboxEntry).where(OutboxEntry.message_id.in_(ids)))
    by_message_id = {entry.message_id: entry for entry in entries}
    reported: dict[int, int] = {}
    for item in bounces:
        report = item.classification.bounce
        assert report is not None
        entry = next(
            (by_message_id[i] for i in report.original_message_ids if i in by_message_id), None
        )
        if entry is None:
            continue
        if not _reports_a_recipient(report, entry):
            # Anyone can quote one of our Message-IDs in a made-up bounce: only a report on
            # an address the message was really sent to may mark it failed.
            item.hits += (RuleHit("bounce-foreign", f"outbox #{entry.id}: not its recipient"),)
            continue
        entry.state = "error"
        entry.last_error = f"Bounced: {report.reason()}"
        entry.updated_at = utcnow()
        reported[item.receipt.id] = entry.id
        item.hits += (RuleHit("bounce-marks-failed", f"outbox #{entry.id} marked failed"),)
    return reported


def _attachments(session: Session, kept: list[Work], message_of: dict[int, int]) -> None:
    parts = [part.data for item in kept for part in item.parsed.attachments]
    digests = iter(put_blobs(session, parts)) if parts else iter(())
    rows = []
    for item in kept:
        item.message_pk = message_of[item.receipt.id]
        mine = [next(digests) for _ in item.parsed.attachments]
        rows += attachment_rows(item.message_pk, item.parsed, mine)
    if rows:
        session.execute(insert(Attachment.__table__), rows)  # type: ignore[arg-type]


def _mark_done(session: Session, inbound_ids: list[int]) -> None:
    table: Table = InboundReceipt.__table__  # type: ignore[assignment]
    now = utcnow()
    for start in range(0, len(inbound_ids), IDS_PER_QUERY):
        chunk = inbound_ids[start : start + IDS_PER_QUERY]
        session.execute(
            update(table)
            .where(table.c.id.in_(chunk))
            .values(state="done", processed_at=now, claimed_until=None, last_error=None)
        )


def _acknowledge(session: Session, item: Work, identity: Identity) -> None:
    wanted = item.rules.acknowledge_new_cases and item.created and not item.receipt.archive
    if not wanted or item.classification.kind != "normal" or item.case is None:
        return
    assert item.case.id is not None
    notify.acknowledge(
        session,
        identity=identity,
        channel=item.channel,
        case_id=item.case.id,
        sender=item.sender,
        subject=item.parsed.subject,
        in_reply_to=item.parsed.message_id,
    )
    item.hits += (RuleHit("acknowledged", f"acknowledgement queued to {item.sender.email}"),)


def _result(item: Work) -> IngestResult:
    if item.result is not None:
        return item.result
    assert item.case is not None
    assert item.case.id is not None
    assert item.message_pk is not None
    outcome = "created" if item.created else "appended"
    log.info("inbound %s: %s case #%s", item.receipt.id, outcome, item.case.id)
    return IngestResult(
        outcome,  # type: ignore[arg-type]
        item.receipt.id,
        case_id=item.case.id,
        message_pk=item.message_pk,
        rule_hits=item.hits,
    )


def _reports_a_recipient(report: BounceReport, entry: OutboxEntry) -> bool:
    sent_to = {str(a).strip().lower() for a in entry.recipients}
    failed = {r.address.strip().lower() for r in report.recipients if r.action == "failed"}
    # A plain-text bounce may name no address at all; then the Message-ID has to do.
    return not failed or bool(sent_to & failed)
