"""``ingest_raw`` end to end on SQLite and PostgreSQL: raw bytes in, cases and quarantine out."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select, update

from casemail.channels.service import add_channel
from casemail.db import Database
from casemail.db.blobs import get_blob
from casemail.db.models import (
    Attachment,
    Blob,
    Case,
    Channel,
    Company,
    Contact,
    InboundReceipt,
    Message,
    OutboxEntry,
    QuarantineEntry,
)
from casemail.ingest import IngestOptions, IngestResult, Source, ingest_raw, pending_receipts
from casemail.ingest.files import is_mbox, read_messages
from casemail.ingest.pipeline import process_receipt
from casemail.ingest.receipt import record_receipt
from casemail.workers.jobs import reprocess_pending
from tests.support import FailingMessageWrites, sample_message, wire_bytes

SMTP = Source(
    "smtp",
    envelope_from="alice@customer.example",
    envelope_to=("support@example.com",),
    peer="192.0.2.10",
)
PNG = b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 4
PDF = b"%PDF-1.4\n" + b"\x00\xff binary \r\n\r\n--not-a-boundary\n" * 50 + b"%%EOF\n"


@pytest.fixture
def channel(db: Database) -> int:
    with db.write() as session:
        return add_channel(session, address="support@example.com").id


def ingest(db: Database, channel_id: int, raw: bytes, **kw: Any) -> IngestResult:
    return ingest_raw(db, channel_id, raw, SMTP, **kw)


def count(db: Database, model: type) -> int:
    with db.read() as session:
        return session.scalar(select(func.count()).select_from(model)) or 0


def rules(result: IngestResult) -> list[str]:
    return [hit.rule for hit in result.rule_hits]


def stored_message(db: Database, result: IngestResult) -> Message:
    assert result.message_pk is not None, result
    with db.read() as session:
        return session.get_one(Message, result.message_pk)


def stored_case(db: Database, case_id: int | None) -> Case:
    assert case_id is not None
    with db.read() as session:
        return session.get_one(Case, case_id)


def receipt_of(db: Database, result: IngestResult) -> InboundReceipt:
    with db.read() as session:
        return session.get_one(InboundReceipt, result.inbound_id)


def raw_of(db: Database, result: IngestResult) -> bytes:
    with db.read() as session:
        receipt = session.get_one(InboundReceipt, result.inbound_id)
        return get_blob(session, receipt.raw_sha256)


def with_received(raw: bytes, *hops: str, eol: bytes = b"\r\n") -> bytes:
    """``raw`` as relays hand it on: each hop prepends its Received field (RFC 5321 4.4)."""
    trace = b"".join(f"Received: {hop}".encode() + eol for hop in hops)
    return trace + raw


def mime(
    content_type: bytes, body: bytes, *, cte: bytes = b"8bit", subject: bytes = b"Hi"
) -> bytes:
    return (
        b"From: Alice Example <alice@customer.example>\r\n"
        b"To: support@example.com\r\n"
        b"Subject: " + subject + b"\r\n"
        b"Message-ID: <"
        + hashlib.sha256(body + subject).hexdigest()[:16].encode()
        + b"@customer.example>\r\n"
        b"MIME-Version: 1.0\r\n"
        b"Content-Type: " + content_type + b"\r\n"
        b"Content-Transfer-Encoding: " + cte + b"\r\n"
        b"\r\n" + body
    )


def bare_id(message: EmailMessage) -> str:
    return str(message["Message-ID"]).strip("<>")


# A new message


def test_new_message_creates_case_contact_and_message(db: Database, channel: int) -> None:
    message = sample_message(sender="Alice Example <Alice@Customer.Example>")
    message["Cc"] = "Bob <bob@customer.example>"
    message["Date"] = "Mon, 01 Jan 2024 12:00:00 +0200"
    raw = wire_bytes(message)

    result = ingest(db, channel, raw)

    assert result.outcome == "created"
    assert rules(result) == ["create-case"]
    case = stored_case(db, result.case_id)
    assert case.subject == "Printer on fire"
    assert case.status == "new"
    assert case.channel_id == channel
    assert case.contact is not None
    assert case.contact.email == "alice@customer.example"
    assert case.contact.name == "Alice Example"

    stored = stored_message(db, result)
    assert stored.case_id == case.id
    assert stored.direction == "inbound"
    assert stored.message_id == bare_id(message)
    assert stored.subject == "Printer on fire"
    assert stored.from_address == "Alice@Customer.Example"
    assert stored.from_name == "Alice Example"
    assert stored.to_addresses == [{"email": "support@example.com", "name": None}]
    assert stored.cc_addresses == [{"email": "bob@customer.example", "name": "Bob"}]
    assert stored.sent_at == datetime(2024, 1, 1, 10, tzinfo=UTC)
    assert stored.text_body == "Please help.\r\n"
    assert stored.html_body is None
    assert stored.attachments == []
    assert stored.rule_hits == [{"rule": "create-case", "detail": f"new case #{case.id}"}]

    receipt = receipt_of(db, result)
    assert receipt.state == "done"
    assert receipt.attempts == 1
    assert receipt.processed_at is not None
    assert receipt.last_error is None
    assert (receipt.source, receipt.envelope_from, receipt.envelope_to, receipt.peer) == (
        "smtp",
        "alice@customer.example",
        ["support@example.com"],
        "192.0.2.10",
    )
    assert receipt.message_id == bare_id(message)
    assert receipt.raw_sha256 == stored.raw_sha256 == hashlib.sha256(raw).hexdigest()
    assert receipt.size == len(raw)
    assert raw_of(db, result) == raw
    assert count(db, Contact) == 1


def test_text_html_and_attachments_are_stored(db: Database, channel: int) -> None:
    message = sample_message(body="Plain text body.\n")
    message.add_alternative(
        "<p>HTML body <img src='cid:logo@customer.example'></p>\n", subtype="html"
    )
    html_part = message.get_body(preferencelist=("html",))
    assert html_part is not None
    html_part.add_related(PNG, maintype="image", subtype="png", cid="<logo@customer.example>")
    message.add_attachment(PDF, maintype="application", subtype="pdf", filename="Rechnung März.pdf")
    message.add_attachment("a,b\r\n1,2\r\n", subtype="csv", filename="data.csv")

    result = ingest(db, channel, wire_bytes(message))

    assert result.outcome == "created"
    stored = stored_message(db, result)
    assert stored.text_body is not None
    assert stored.text_body.replace("\r\n", "\n") == "Plain text body.\n"
    assert stored.html_body is not None
    # Sanitised (nh3): the image by Content-ID stays; attribute quotes are normalised.
    assert '<p>HTML body <img src="cid:logo@customer.example"></p>' in stored.html_body
    parts = {(a.filename, a.content_type): a for a in stored.attachments}
    assert set(parts) == {
        (None, "image/png"),
        ("Rechnung März.pdf", "application/pdf"),
        ("data.csv", "text/csv"),
    }
    logo = parts[None, "image/png"]
    assert (logo.inline, logo.content_id) == (True, "logo@customer.example")
    pdf = parts["Rechnung März.pdf", "application/pdf"]
    assert (pdf.inline, pdf.content_id, pdf.size) == (False, None, len(PDF))
    csv = parts["data.csv", "text/csv"]
    with db.read() as session:
        assert get_blob(session, logo.sha256) == PNG
        assert get_blob(session, pdf.sha256) == PDF
        assert get_blob(session, csv.sha256).replace(b"\r\n", b"\n") == b"a,b\n1,2\n"
    assert logo.sha256 == hashlib.sha256(PNG).hexdigest()
    assert pdf.sha256 == hashlib.sha256(PDF).hexdigest()
    assert logo.size == len(PNG)


def test_forwarded_message_stays_whole_as_an_attachment(db: Database, channel: int) -> None:
    inner = sample_message(sender="carol@supplier.example", subject="Original", body="Inner text\n")
    outer = sample_message(subject="Fwd: Original", body="See below.\n")
    outer.add_attachment(inner)

    stored = stored_message(db, ingest(db, channel, wire_bytes(outer)))

    assert stored.text_body is not None
    assert "Inner text" not in stored.text_body
    [attachment] = stored.attachments
    assert attachment.content_type == "message/rfc822"
    with db.read() as session:
        kept = get_blob(session, attachment.sha256)
    assert b"Subject: Original" in kept
    assert b"Inner text" in kept


def test_identical_attachment_bytes_are_stored_once(db: Database, channel: int) -> None:
    for subject in ("First", "Second"):
        message = sample_message(subject=subject)
        message.add_attachment(PDF, maintype="application", subtype="pdf", filename="same.pdf")
        assert ingest(db, channel, wire_bytes(message)).outcome == "created"
    with db.read() as session:
        shas = list(session.scalars(select(Attachment.sha256)))
        assert shas == [hashlib.sha256(PDF).hexdigest()] * 2
        assert session.scalar(select(func.count()).where(Blob.sha256 == shas[0])) == 1


def test_contact_is_one_per_address_whatever_its_case(db: Database, channel: int) -> None:
    first = ingest(db, channel, wire_bytes(sample_message(sender="BOB@Customer.Example")))
    second = ingest(
        db,
        channel,
        wire_bytes(sample_message(sender="Bob Builder <bob@customer.example>", subject="Other")),
    )
    assert first.case_id != second.case_id
    with db.read() as session:
        [contact] = session.scalars(select(Contact))
        # The name arrived with the second message and fills the gap.
        assert (contact.email, contact.name) == ("bob@customer.example", "Bob Builder")
        assert set(session.scalars(select(Case.contact_id))) == {contact.id}


def test_sender_header_is_used_when_from_has_no_address(db: Database, channel: int) -> None:
    raw = (
        b"From: undisclosed-recipients:;\r\nSender: Relay Bot <bot@customer.example>\r\n"
        b"Subject: Automated\r\n\r\nbody\r\n"
    )
    result = ingest(db, channel, raw)
    assert result.outcome == "created"
    contact = stored_case(db, result.case_id).contact
    assert contact is not None
    assert contact.email == "bot@customer.example"


def test_message_without_subject_gets_a_placeholder_case_subject(
    db: Database, channel: int
) -> None:
    result = ingest(db, channel, b"From: alice@customer.example\r\n\r\nno subject\r\n")
    assert stored_case(db, result.case_id).subject == "(no subject)"
    assert stored_message(db, result).subject == ""


# Duplicates


def test_same_raw_delivered_twice_is_one_message(db: Database, channel: int) -> None:
    raw = wire_bytes(sample_message())
    first = ingest(db, channel, raw)
    again = ingest(db, channel, raw)

    assert first.outcome == "created"
    assert again.outcome == "duplicate"
    assert (again.inbound_id, again.case_id, again.message_pk) == (
        first.inbound_id,
        first.case_id,
        first.message_pk,
    )
    assert (count(db, InboundReceipt), count(db, Message), count(db, Case)) == (1, 1, 1)
    assert receipt_of(db, first).attempts == 1


def test_redelivery_with_other_trace_fields_and_line_endings_is_a_duplicate(
    db: Database, channel: int
) -> None:
    message = sample_message()
    via_smtp = with_received(wire_bytes(message), "from mx1.relay.example by mx.example.com")
    via_file = (
        b"Return-Path: <alice@customer.example>\n"
        b"Delivered-To: support@example.com\n"
        + with_received(
            message.as_bytes(),
            "from mx2.relay.example\n\tby imap.example.com; Mon, 1 Jan 2024 10:00:00 +0000",
            "from laptop by mx2.relay.example",
            eol=b"\n",
        )
    )
    assert via_smtp != via_file

    first = ingest(db, channel, via_smtp)
    again = ingest_raw(db, channel, via_file, Source("cli"))

    assert again.outcome == "duplicate"
    assert again.case_id == first.case_id
    assert again.message_pk == first.message_pk
    assert (count(db, InboundReceipt), count(db, Message)) == (1, 1)
    assert raw_of(db, first) == via_smtp
    assert count(db, Blob) == 1  # the second copy's bytes were not kept as an orphan


def test_same_message_id_with_different_content_is_stored_separately(
    db: Database, channel: int
) -> None:
    original = sample_message(body="First version.\n")
    edited = sample_message(body="Second, different version.\n")
    edited.replace_header("Message-ID", original["Message-ID"])

    first = ingest(db, channel, wire_bytes(original))
    second = ingest(db, channel, wire_bytes(edited))

    assert second.outcome != "duplicate"
    assert second.inbound_id != first.inbound_id
    assert second.message_pk != first.message_pk
    with db.read() as session:
        bodies = list(session.scalars(select(Message.text_body).order_by(Message.id)))
        ids = set(session.scalars(select(Message.message_id)))
    assert [b.replace("\r\n", "\n") for b in bodies if b] == [
        "First version.\n",
        "Second, different version.\n",
    ]
    assert ids == {bare_id(original)}


def test_dedupe_is_per_channel(db: Database, channel: int) -> None:
    with db.write() as session:
        sales = add_channel(session, address="sales@example.com").id
    raw = wire_bytes(sample_message(to="support@example.com, sales@example.com"))

    on_support = ingest(db, channel, raw)
    on_sales = ingest(db, sales, raw)

    assert (on_support.outcome, on_sales.outcome) == ("created", "created")
    assert stored_case(db, on_support.case_id).channel_id == channel
    assert stored_case(db, on_sales.case_id).channel_id == sales
    assert count(db, Blob) == 1


def test_duplicate_of_quarantined_message_points_at_its_quarantine_entry(
    db: Database, channel: int
) -> None:
    raw = b"Subject: no sender here\r\n\r\nbody\r\n"
    first = ingest(db, channel, raw)
    again = ingest(db, channel, raw)
    assert first.outcome == "quarantined"
    assert again.outcome == "duplicate"
    assert again.quarantine_id == first.quarantine_id
    assert again.reason == first.reason
    assert again.case_id is None
    assert count(db, QuarantineEntry) == 1


# Threading


def test_reply_with_in_reply_to_joins_the_case(db: Database, channel: int) -> None:
    original = sample_message()
    first = ingest(db, channel, wire_bytes(original))
    with db.write() as session:
        session.execute(
            update(Case)
            .values(last_message_at=datetime(2020, 1, 1, tzinfo=UTC))
            .where(Case.id == first.case_id)
        )
    reply = sample_message(subject="Re: Printer on fire", body="Still burning.\n")
    reply["In-Reply-To"] = original["Message-ID"]

    result = ingest(db, channel, wire_bytes(reply))

    assert result.outcome == "appended"
    assert result.case_id == first.case_id
    assert rules(result) == ["thread-references"]
    stored = stored_message(db, result)
    assert stored.in_reply_to == bare_id(original)
    assert stored.rule_hits == [{"rule": "thread-references", "detail": "In-Reply-To/References"}]
    case = stored_case(db, first.case_id)
    assert case.subject == "Printer on fire"
    assert case.last_message_at > datetime(2020, 1, 1, tzinfo=UTC)
    assert (count(db, Case), count(db, Message)) == (1, 2)


@pytest.mark.parametrize("in_reply_to", [None, "<unknown@elsewhere.example>"])
def test_reply_found_through_references_joins_the_case(
    db: Database, channel: int, in_reply_to: str | None
) -> None:
    original = sample_message()
    first = ingest(db, channel, wire_bytes(original))
    reply = sample_message(subject="Re: Printer on fire")
    if in_reply_to:
        reply["In-Reply-To"] = in_reply_to
    reply["References"] = f"<older@elsewhere.example> {original['Message-ID']} <x@y.example>"

    result = ingest(db, channel, wire_bytes(reply))

    assert result.outcome == "appended"
    assert result.case_id == first.case_id
    assert stored_message(db, result).references == [
        "older@elsewhere.example",
        bare_id(original),
        "x@y.example",
    ]


def test_newest_reference_decides_between_cases(db: Database, channel: int) -> None:
    """RFC 5322 3.6.4: References lists the thread oldest first; the newest match wins."""
    old = sample_message(subject="Old thread")
    new = sample_message(subject="New thread")
    old_case = ingest(db, channel, wire_bytes(old)).case_id
    new_case = ingest(db, channel, wire_bytes(new)).case_id
    reply = sample_message(subject="Re: both")
    reply["References"] = f"{old['Message-ID']} {new['Message-ID']}"

    result = ingest(db, channel, wire_bytes(reply))

    assert old_case != new_case
    assert result.case_id == new_case


def test_reply_to_our_own_outbound_message_joins_the_case(db: Database, channel: int) -> None:
    first = ingest(db, channel, wire_bytes(sample_message()))
    with db.write() as session:
        # Outbox ids are stored as references are: without angle brackets.
        session.add(OutboxEntry(case_id=first.case_id, message_id="answer-1@example.com"))
    reply = sample_message(subject="Re: Printer on fire")
    reply["In-Reply-To"] = "<answer-1@example.com>"

    result = ingest(db, channel, wire_bytes(reply))

    assert result.outcome == "appended"
    assert result.case_id == first.case_id


def test_reply_reopens_a_closed_case(db: Database, channel: int) -> None:
    original = sample_message()
    first = ingest(db, channel, wire_bytes(original))
    with db.write() as session:
        session.get_one(Case, first.case_id).status = "closed"

    result = ingest(db, channel, wire_bytes(sample_message(in_reply_to=original["Message-ID"])))

    assert result.case_id == first.case_id
    assert rules(result) == ["thread-references", "reopened"]
    assert stored_case(db, first.case_id).status == "open"


def test_reply_to_a_deleted_case_opens_a_new_case(db: Database, channel: int) -> None:
    """A deleted case is hidden: a reply threaded onto it would vanish from view."""
    original = sample_message(subject="Invoice")
    first = ingest(db, channel, wire_bytes(original))
    with db.write() as session:
        session.get_one(Case, first.case_id).deleted_at = datetime.now(UTC)

    by_reference = ingest(
        db, channel, wire_bytes(sample_message(in_reply_to=original["Message-ID"]))
    )
    tagged = sample_message(subject=f"Re: [Case #{first.case_id}] Invoice")
    by_tag = ingest(db, channel, wire_bytes(tagged))

    assert by_reference.outcome == by_tag.outcome == "created"
    assert first.case_id not in (by_reference.case_id, by_tag.case_id)
    assert "subject-tag-unknown" in rules(by_tag)


def test_reply_is_not_threaded_into_another_companys_case(db: Database, channel: int) -> None:
    original = sample_message()
    first = ingest(db, channel, wire_bytes(original))
    with db.write() as session:
        company = Company(name="Other Inc")
        session.add(company)
        session.flush()
        other = add_channel(session, address="help@other.example", company_id=company.id).id
    reply = sample_message(
        to="help@other.example",
        subject=f"Re: [Case #{first.case_id}] Printer on fire",
        in_reply_to=original["Message-ID"],
    )

    result = ingest(db, other, wire_bytes(reply))

    assert result.outcome == "created"
    assert result.case_id != first.case_id
    assert "thread-references" not in rules(result)
    assert "subject-tag-unknown" in rules(result)
    assert stored_case(db, result.case_id).channel_id == other


# Subject tag


@pytest.mark.parametrize(
    ("sender", "tag"),
    [
        ("Bob <bob@customer.example>", "[Case #{id}]"),
        ("bob@CUSTOMER.Example", "[case#{id}]"),
        ("alice@customer.example", "[ CASE # {id} ]"),
    ],
)
def test_subject_tag_from_the_contacts_domain_joins_the_case(
    db: Database, channel: int, sender: str, tag: str
) -> None:
    first = ingest(db, channel, wire_bytes(sample_message()))
    subject = "Re: " + tag.format(id=first.case_id) + " Printer on fire"

    result = ingest(db, channel, wire_bytes(sample_message(sender=sender, subject=subject)))

    assert result.outcome == "appended"
    assert result.case_id == first.case_id
    assert rules(result) == ["thread-subject-tag"]
    assert count(db, Case) == 1


def test_subject_tag_from_a_stranger_opens_a_new_case(db: Database, channel: int) -> None:
    first = ingest(db, channel, wire_bytes(sample_message()))
    subject = f"Re: [Case #{first.case_id}] Printer on fire"

    result = ingest(
        db, channel, wire_bytes(sample_message(sender="mallory@evil.example", subject=subject))
    )

    assert result.outcome == "created"
    assert result.case_id != first.case_id
    assert rules(result) == ["subject-tag-untrusted", "create-case"]
    assert "'evil.example'" in result.rule_hits[0].detail
    with db.read() as session:
        assert session.scalar(select(func.count()).where(Message.case_id == first.case_id)) == 1
    new_case = stored_case(db, result.case_id)
    assert new_case.contact is not None
    assert new_case.contact.email == "mallory@evil.example"


def test_subject_tag_from_a_sub_domain_is_not_the_contacts_domain(
    db: Database, channel: int
) -> None:
    first = ingest(db, channel, wire_bytes(sample_message()))
    subject = f"[Case #{first.case_id}] hello"
    result = ingest(
        db, channel, wire_bytes(sample_message(sender="eve@mail.customer.example", subject=subject))
    )
    assert result.outcome == "created"
    assert "subject-tag-untrusted" in rules(result)


@pytest.mark.parametrize("number", ["9999", "999999999999"])
def test_subject_tag_for_no_such_case_opens_a_new_case(
    db: Database, channel: int, number: str
) -> None:
    ingest(db, channel, wire_bytes(sample_message()))
    result = ingest(db, channel, wire_bytes(sample_message(subject=f"[Case #{number}] hi")))
    assert result.outcome == "created"
    assert rules(result) == ["subject-tag-unknown", "create-case"]


def test_subject_tag_uses_the_channels_prefix(db: Database) -> None:
    with db.write() as session:
        channel = add_channel(session, address="help@example.com", subject_tag_prefix="Ticket").id
    first = ingest(db, channel, wire_bytes(sample_message()))

    with_case = ingest(
        db, channel, wire_bytes(sample_message(subject=f"Re: [Case #{first.case_id}] x"))
    )
    with_ticket = ingest(
        db, channel, wire_bytes(sample_message(subject=f"Re: [Ticket #{first.case_id}] x"))
    )

    assert with_case.outcome == "created"
    assert with_ticket.case_id == first.case_id


def test_references_win_over_the_subject_tag(db: Database, channel: int) -> None:
    first_message = sample_message(subject="First")
    first = ingest(db, channel, wire_bytes(first_message))
    second = ingest(db, channel, wire_bytes(sample_message(subject="Second")))
    reply = sample_message(
        subject=f"Re: [Case #{second.case_id}] First", in_reply_to=first_message["Message-ID"]
    )
    result = ingest(db, channel, wire_bytes(reply))
    assert result.case_id == first.case_id
    assert rules(result) == ["thread-references"]


# Quarantine


@pytest.mark.parametrize(
    ("raw", "code"),
    [
        (b"", "empty-message"),
        (b"\r\n\r\n \t\r\n", "empty-message"),
        (b"To: support@example.com\r\nSubject: who am I?\r\n\r\nbody\r\n", "no-sender"),
        (b"From: undisclosed-recipients:;\r\nSubject: x\r\n\r\nbody\r\n", "no-sender"),
        (b"From: Alice <alice>\r\nSubject: x\r\n\r\nbody\r\n", "no-sender"),
        (bytes(range(256)) * 8, "no-sender"),
        (b"\x00" * 64 + b"\r\n\r\n", "no-sender"),
    ],
)
def test_unusable_mail_is_quarantined_with_its_raw_bytes(
    db: Database, channel: int, raw: bytes, code: str
) -> None:
    result = ingest(db, channel, raw)

    assert result.outcome == "quarantined"
    assert result.case_id is None
    assert result.reason
    with db.read() as session:
        entry = session.get_one(QuarantineEntry, result.quarantine_id)
        assert entry.reason_code == code
        assert entry.reason == result.reason
        assert entry.state == "held"
        assert entry.inbound_id == result.inbound_id
        assert entry.channel_id == channel
        assert entry.purge_after - entry.created_at == timedelta(days=30)
    receipt = receipt_of(db, result)
    assert receipt.state == "quarantined"
    assert receipt.processed_at is not None
    assert raw_of(db, result) == raw
    assert (count(db, Case), count(db, Message), count(db, Contact)) == (0, 0, 0)


def test_mail_for_an_inactive_channel_is_quarantined(db: Database, channel: int) -> None:
    with db.write() as session:
        ch = session.get_one(Channel, channel)
        ch.active = False
        ch.purge_days = 7
    raw = wire_bytes(sample_message())

    result = ingest(db, channel, raw)

    assert result.outcome == "quarantined"
    assert result.reason == "Channel support@example.com is inactive."
    with db.read() as session:
        entry = session.get_one(QuarantineEntry, result.quarantine_id)
        assert entry.reason_code == "channel-inactive"
        assert entry.purge_after - entry.created_at == timedelta(days=7)
    assert raw_of(db, result) == raw
    assert count(db, Case) == 0


# Processing failures and retries


def FailingWrites(db: Database, failures: int) -> FailingMessageWrites:
    """Writes that fail the first ``failures`` times they try to store a case message."""
    return FailingMessageWrites(
        db, lambda _row: True, error="simulated storage failure {n}", limit=failures
    )


def test_failure_is_retried_then_quarantined_as_processing_failed(
    db: Database, channel: int
) -> None:
    options = IngestOptions(max_attempts=3)
    flaky = FailingWrites(db, failures=99)
    raw = wire_bytes(sample_message())

    first = ingest(flaky, channel, raw, options=options)

    assert first.outcome == "pending"
    assert first.reason == "RuntimeError: simulated storage failure 1"
    receipt = receipt_of(db, first)
    assert (receipt.state, receipt.attempts, receipt.last_error) == ("received", 1, first.reason)
    assert pending_receipts(db) == [first.inbound_id]
    # The failed transaction left nothing half-written: the case it had flushed is gone.
    assert (count(db, Case), count(db, Contact), count(db, Message)) == (0, 0, 0)

    assert reprocess_pending(flaky, options) == 1
    assert receipt_of(db, first).attempts == 2
    assert pending_receipts(db) == [first.inbound_id]
    assert reprocess_pending(flaky, options) == 1

    assert flaky.raised == 3
    assert pending_receipts(db) == []
    receipt = receipt_of(db, first)
    assert (receipt.state, receipt.attempts) == ("quarantined", 3)
    with db.read() as session:
        entry = session.scalars(select(QuarantineEntry)).one()
    assert entry.inbound_id == first.inbound_id
    assert entry.reason_code == "processing-failed"
    assert entry.reason == (
        "Processing failed 3 times; last error: RuntimeError: simulated storage failure 3"
    )
    assert raw_of(db, first) == raw
    assert (count(db, Case), count(db, Message)) == (0, 0)

    # Handled now: neither the worker nor a redelivery touches it again.
    assert reprocess_pending(flaky, options) == 0
    again = ingest(flaky, channel, raw, options=options)
    assert (again.outcome, again.quarantine_id) == ("duplicate", entry.id)
    assert flaky.raised == 3


def test_a_single_allowed_attempt_quarantines_on_the_first_failure(
    db: Database, channel: int
) -> None:
    flaky = FailingWrites(db, failures=99)
    options = IngestOptions(max_attempts=1)
    result = ingest(flaky, channel, wire_bytes(sample_message()), options=options)
    assert result.outcome == "quarantined"
    assert result.reason == (
        "Processing failed 1 times; last error: RuntimeError: simulated storage failure 1"
    )
    assert receipt_of(db, result).attempts == 1


def test_a_transient_failure_recovers_on_the_next_attempt(db: Database, channel: int) -> None:
    flaky = FailingWrites(db, failures=1)
    first = ingest(flaky, channel, wire_bytes(sample_message()))
    assert first.outcome == "pending"

    assert reprocess_pending(flaky, IngestOptions()) == 1

    receipt = receipt_of(db, first)
    assert (receipt.state, receipt.attempts, receipt.last_error) == ("done", 2, None)
    assert (count(db, Case), count(db, Message), count(db, QuarantineEntry)) == (1, 1, 0)


def test_receipt_claimed_by_a_live_worker_is_left_alone(db: Database, channel: int) -> None:
    receipt = record_receipt(db, channel_id=channel, raw=wire_bytes(sample_message()), source=SMTP)
    with db.write() as session:
        row = session.get_one(InboundReceipt, receipt.inbound_id)
        row.state = "processing"
        row.attempts = 1
        row.claimed_until = datetime.now(UTC) + timedelta(minutes=5)

    result = process_receipt(db, receipt.inbound_id, IngestOptions())

    assert result.outcome == "pending"
    assert pending_receipts(db) == []
    assert count(db, Case) == 0
    assert receipt_of(db, result).attempts == 1


def test_receipt_whose_worker_died_every_time_is_quarantined(db: Database, channel: int) -> None:
    raw = wire_bytes(sample_message())
    receipt = record_receipt(db, channel_id=channel, raw=raw, source=SMTP)
    with db.write() as session:
        row = session.get_one(InboundReceipt, receipt.inbound_id)
        row.state = "processing"
        row.attempts = 3
        row.claimed_until = datetime.now(UTC) - timedelta(seconds=1)
    assert pending_receipts(db) == [receipt.inbound_id]

    assert reprocess_pending(db, IngestOptions(max_attempts=3)) == 1

    with db.read() as session:
        entry = session.scalars(select(QuarantineEntry)).one()
        assert entry.reason_code == "processing-failed"
        # The count in the reason is left unchecked: it includes the claim that gave up.
        assert entry.reason.startswith("Processing failed ")
        assert entry.reason.endswith("; last error: the worker stopped while processing")
        assert (
            get_blob(session, session.get_one(InboundReceipt, receipt.inbound_id).raw_sha256) == raw
        )
    assert count(db, Case) == 0


# Charsets


@pytest.mark.parametrize(
    ("content_type", "body", "cte", "expected", "defect"),
    [
        (b"text/plain; charset=iso-8859-1", b"Caf\xe9 cr\xe8me", b"8bit", "Café crème", False),
        (b"text/plain; charset=windows-1252", b"\x80 5 \x93ok\x94", b"8bit", "€ 5 “ok”", False),
        (b"text/plain; charset=iso-8859-15", b"5 \xa4", b"8bit", "5 €", False),
        (b"text/plain; charset=koi8-r", b"\xf0\xd2\xc9\xce\xd4\xc5\xd2", b"8bit", "Принтер", False),
        (b"text/plain; charset=iso-8859-1", b"Caf=E9", b"quoted-printable", "Café", False),
        (b"text/plain; charset=utf-8", b"Q2Fmw6k=", b"base64", "Café", False),
        (b'text/plain; charset="x-no-such-charset"', b"Caf\xc3\xa9", b"8bit", "Café", False),
        (b'text/plain; charset="x-no-such-charset"', b"Caf\xe9", b"8bit", "Café", True),
        (b"text/plain; charset=utf-8", b"Caf\xe9 \x80", b"8bit", "Café €", True),
        (b"text/plain", b"Caf\xc3\xa9", b"8bit", "Café", True),
        (b"text/plain; charset=us-ascii", b"nul\x00byte", b"7bit", "nulbyte", False),
    ],
)
def test_8bit_and_unusual_charsets_are_stored_as_text(
    db: Database,
    channel: int,
    content_type: bytes,
    body: bytes,
    cte: bytes,
    expected: str,
    defect: bool,
) -> None:
    raw = mime(content_type, body + b"\r\n", cte=cte)

    result = ingest(db, channel, raw)

    assert result.outcome == "created"
    stored = stored_message(db, result)
    assert stored.text_body is not None
    assert stored.text_body.rstrip("\r\n") == expected
    assert any("body not valid" in d for d in stored.parse_defects) is defect
    assert raw_of(db, result) == raw


def test_latin1_html_part_is_stored(db: Database, channel: int) -> None:
    raw = mime(b"text/html; charset=iso-8859-1", b"<p>Gr\xfc\xdfe</p>\r\n")
    stored = stored_message(db, ingest(db, channel, raw))
    assert stored.text_body is None
    assert stored.html_body == "<p>Grüße</p>\n"  # the HTML parser turns CRLF into LF


def test_undeclared_8bit_headers_still_make_a_case(db: Database, channel: int) -> None:
    raw = (
        b"From: Ren\xe9 M\xfcller <rene@customer.example>\r\n"
        b"To: support@example.com\r\n"
        b"Subject: Caf\xe9 \xc3\xa9\r\n"
        b"\r\n"
        b"body\r\n"
    )
    result = ingest(db, channel, raw)
    assert result.outcome == "created"
    stored = stored_message(db, result)
    assert stored.from_name == "René Müller"
    assert stored.subject.startswith("Caf")
    assert stored.subject.endswith(" é")
    assert stored_case(db, result.case_id).subject == stored.subject


def test_out_of_range_date_is_dropped_not_fatal(db: Database, channel: int) -> None:
    message = sample_message()
    message["Date"] = "Fri, 31 Dec 9999 23:59:59 -0100"
    result = ingest(db, channel, wire_bytes(message))
    assert result.outcome == "created"
    stored = stored_message(db, result)
    assert stored.sent_at is None
    assert "Date: unparseable" in stored.parse_defects


def test_nul_in_attachment_headers_is_dropped(db: Database, channel: int) -> None:
    """PostgreSQL text cannot hold NUL; SQLite can. Both must store the message."""
    raw = (
        b"From: alice@customer.example\r\nSubject: nul\r\nMIME-Version: 1.0\r\n"
        b'Content-Type: multipart/mixed; boundary="b"\r\n\r\n'
        b"--b\r\nContent-Type: text/plain\r\n\r\nsee attached\r\n"
        b"--b\r\nContent-Type: application/x-\x00odd\r\n"
        b"Content-ID: <part\x001@customer.example>\r\n"
        b'Content-Disposition: attachment; filename="a\x00.bin"\r\n\r\n'
        b"data\r\n--b--\r\n"
    )
    result = ingest(db, channel, raw)
    assert result.outcome == "created"
    [attachment] = stored_message(db, result).attachments
    assert attachment.content_type == "application/x-odd"
    assert attachment.content_id == "part1@customer.example"
    assert attachment.filename == "a.bin"


# Files: .eml and mbox


def test_eml_file_is_one_message(db: Database, channel: int, tmp_path: Path) -> None:
    raw = sample_message().as_bytes()
    assert raw.startswith(b"From: ")  # a header, not an mbox From_ line
    path = tmp_path / "one.eml"
    path.write_bytes(raw)

    assert not is_mbox(path)
    assert list(read_messages(path)) == [(str(path), raw)]
    result = ingest_raw(db, channel, raw, Source("cli"))
    assert result.outcome == "created"
    assert receipt_of(db, result).source == "cli"


def test_mbox_file_is_split_into_its_messages(db: Database, channel: int, tmp_path: Path) -> None:
    first = sample_message(body="First line.\nFrom the archive, a quoted line.\n")
    reply = sample_message(subject="Re: Printer on fire", in_reply_to=first["Message-ID"])
    other = sample_message(sender="bob@other.example", subject="Unrelated")
    path = tmp_path / "archive.mbox"
    path.write_bytes(
        b"".join(
            b"From sender@example Mon Jan  1 10:00:00 2024\n"
            + m.as_bytes().replace(b"\nFrom ", b"\n>From ")
            + b"\n"
            for m in (first, reply, other)
        )
    )

    assert is_mbox(path)
    messages = list(read_messages(path))

    assert [label for label, _ in messages] == [f"{path}#1", f"{path}#2", f"{path}#3"]
    assert all(not raw.startswith(b"From ") for _, raw in messages)
    assert messages[0][1] == first.as_bytes().replace(b"\nFrom ", b"\n>From ")
    results = [ingest_raw(db, channel, raw, Source("cli")) for _, raw in messages]
    assert [r.outcome for r in results] == ["created", "appended", "created"]
    assert results[1].case_id == results[0].case_id
    assert results[2].case_id != results[0].case_id


def test_mbox_copy_of_a_message_received_by_smtp_is_a_duplicate(
    db: Database, channel: int, tmp_path: Path
) -> None:
    message = sample_message()
    by_smtp = ingest(db, channel, with_received(wire_bytes(message), "from a by mx.example.com"))
    path = tmp_path / "export.mbox"
    path.write_bytes(
        b"From alice@customer.example Mon Jan  1 10:00:00 2024\n"
        + with_received(message.as_bytes(), "from b by imap.example.com", eol=b"\n")
    )

    [(_, raw)] = read_messages(path)
    from_file = ingest_raw(db, channel, raw, Source("cli"))

    assert from_file.outcome == "duplicate"
    assert from_file.message_pk == by_smtp.message_pk
    assert count(db, Message) == 1


def test_empty_file_is_quarantined(db: Database, channel: int, tmp_path: Path) -> None:
    path = tmp_path / "empty.eml"
    path.write_bytes(b"")
    [(label, raw)] = read_messages(path)
    result = ingest_raw(db, channel, raw, Source("cli"))
    assert label == str(path)
    assert result.outcome == "quarantined"
    with db.read() as session:
        assert session.get_one(QuarantineEntry, result.quarantine_id).reason_code == "empty-message"
