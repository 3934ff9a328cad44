"""The channel rules behind the decision table, through ``ingest_raw`` on both databases:
reply policies, known senders only, the rate limit, structured fields, contacts and the
quarantine notice to admins."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import func, select

from casemail.channels.rules import ChannelRules
from casemail.channels.service import add_channel, set_rules
from casemail.db import Database
from casemail.db.models import Case, Contact, InboundReceipt, Message, OutboxEntry, User
from casemail.ingest import IngestResult, Source, ingest_raw
from tests.support import sample_message, wire_bytes

SMTP = Source("smtp", envelope_from=None, envelope_to=(), peer="192.0.2.1")


@pytest.fixture
def channel(db: Database) -> int:
    with db.write() as session:
        return add_channel(session, address="support@example.com").id


def configure(db: Database, channel: int, **rules: Any) -> None:
    with db.write() as session:
        set_rules(session, channel, ChannelRules(**rules))


def send(db: Database, channel: int, **kw: Any) -> IngestResult:
    extra: dict[str, str] = kw.pop("headers", {})
    message = sample_message(**kw)
    for name, value in extra.items():
        message[name] = value
    return ingest_raw(db, channel, wire_bytes(message), SMTP)


def rules_of(result: IngestResult) -> set[str]:
    return {hit.rule for hit in result.rule_hits}


def close(db: Database, case_id: int | None) -> None:
    with db.write() as session:
        session.get_one(Case, case_id).status = "closed"


def the_case(db: Database, case_id: int | None) -> Case:
    with db.read() as session:
        return session.get_one(Case, case_id)


def first_message_id(db: Database, result: IngestResult) -> str:
    with db.read() as session:
        message_id = session.get_one(Message, result.message_pk).message_id
    assert message_id is not None
    return message_id


def test_reply_to_closed_case_reopens_it_by_default(db: Database, channel: int) -> None:
    first = send(db, channel)
    close(db, first.case_id)
    reply = send(db, channel, in_reply_to=first_message_id(db, first), subject="Re: Printer")
    assert reply.case_id == first.case_id
    assert "reopened" in rules_of(reply)
    assert the_case(db, first.case_id).status == "open"


def test_reply_to_closed_case_can_open_a_new_linked_case(db: Database, channel: int) -> None:
    configure(db, channel, closed_case_reply="new-linked")
    first = send(db, channel)
    close(db, first.case_id)
    reply = send(db, channel, in_reply_to=first_message_id(db, first), subject="Re: Printer")
    assert reply.outcome == "created"
    assert "closed-case-new-linked" in rules_of(reply)
    assert the_case(db, reply.case_id).linked_case_id == first.case_id
    assert the_case(db, first.case_id).status == "closed"


def test_an_auto_reply_never_reopens_a_closed_case(db: Database, channel: int) -> None:
    first = send(db, channel)
    close(db, first.case_id)
    ooo = send(
        db,
        channel,
        in_reply_to=first_message_id(db, first),
        headers={"Auto-Submitted": "auto-replied"},
    )
    assert ooo.outcome == "appended"
    assert the_case(db, first.case_id).status == "closed"


@pytest.mark.parametrize(("policy", "splits"), [("stay", False), ("split", True)])
def test_reply_under_a_changed_subject_stays_or_splits(
    db: Database, channel: int, policy: str, splits: bool
) -> None:
    configure(db, channel, changed_subject=policy)
    first = send(db, channel, subject="Printer on fire")
    same = send(
        db, channel, in_reply_to=first_message_id(db, first), subject="RE: AW: Printer on fire"
    )
    other = send(db, channel, in_reply_to=first_message_id(db, first), subject="Re: New laptop")
    assert same.case_id == first.case_id  # prefixes do not count as a change
    if splits:
        assert other.outcome == "created"
        assert "changed-subject-split" in rules_of(other)
        assert the_case(db, other.case_id).linked_case_id == first.case_id
    else:
        assert other.case_id == first.case_id


def test_known_senders_only_rejects_strangers_with_a_notice(db: Database, channel: int) -> None:
    first = send(db, channel, sender="Known <known@customer.example>")
    configure(db, channel, known_senders_only=True)
    again = send(db, channel, sender="known+orders@Customer.Example")  # plus-addressed, any case
    stranger = send(db, channel, sender="Stranger <stranger@else.example>")
    assert first.outcome == "created"
    assert again.outcome == "created"
    assert stranger.outcome == "rejected"
    assert {"unknown-sender", "reject-notice"} <= rules_of(stranger)
    with db.read() as session:
        receipt = session.get_one(InboundReceipt, stranger.inbound_id)
        notices = session.scalars(select(OutboxEntry).where(OutboxEntry.kind == "rejection")).all()
        strangers = session.scalar(
            select(func.count()).select_from(Contact).where(Contact.email.like("stranger%"))
        )
    assert receipt.state == "rejected"
    assert [n.recipients for n in notices] == [["stranger@else.example"]]
    # No account to send with: the notice says so instead of waiting for ever.
    assert notices[0].state == "error"
    assert "global" in (notices[0].last_error or "")
    assert strangers == 0


def test_plus_addressed_sender_is_the_same_contact(db: Database, channel: int) -> None:
    one = send(db, channel, sender="ann@customer.example")
    two = send(db, channel, sender="Ann+billing@CUSTOMER.example")
    with db.read() as session:
        contacts = session.scalars(select(Contact.email)).all()
    assert contacts == ["ann@customer.example"]
    assert the_case(db, one.case_id).contact_id == the_case(db, two.case_id).contact_id


def test_cc_addresses_are_recorded_on_the_message(db: Database, channel: int) -> None:
    result = send(db, channel, headers={"Cc": "Bob <bob@customer.example>, eve@partner.example"})
    with db.read() as session:
        message = session.get_one(Message, result.message_pk)
    assert [a["email"] for a in message.cc_addresses] == [
        "bob@customer.example",
        "eve@partner.example",
    ]


def test_rate_limit_quarantines_a_flood_and_tells_the_admin_once(
    db: Database, channel: int
) -> None:
    with db.write() as session:
        session.add(User(company_id=1, name="Admin", email="admin@example.com", role="admin"))
    configure(db, channel, rate_limit={"messages": 3, "minutes": 10})
    results = [send(db, channel, subject=f"alert {n}") for n in range(6)]
    outcomes = [r.outcome for r in results]
    assert outcomes == ["created"] * 3 + ["quarantined"] * 3
    assert "rate-limit" in rules_of(results[3])
    assert results[3].reason is not None
    assert "Too many messages" in results[3].reason
    with db.read() as session:
        notices = session.scalars(select(OutboxEntry).where(OutboxEntry.kind == "notice")).all()
    assert len(notices) == 1  # throttled: one notice for the flood
    assert notices[0].recipients == ["admin@example.com"]


def test_old_mail_is_not_rate_limited(db: Database, channel: int) -> None:
    configure(db, channel, rate_limit={"messages": 2, "minutes": 10})
    results = [
        send(db, channel, subject=f"old {n}", headers={"Date": "Tue, 01 Jan 2019 10:00:00 +0000"})
        for n in range(4)
    ]
    assert [r.outcome for r in results] == ["created"] * 4


FIELDS = {
    "structured_fields": ["Customer Number", "Severity"],
    "trusted_senders": ["monitor@tools.example"],
}


def test_structured_fields_from_a_trusted_sender_set_the_case(db: Database, channel: int) -> None:
    configure(db, channel, **FIELDS)
    result = send(
        db,
        channel,
        sender="monitor@tools.example",
        body="Disk full on host a7.\nSeverity: high\nUnrelated: x\n",
        headers={"X-Casemail-Customer-Number": "4711"},
    )
    assert the_case(db, result.case_id).fields == {"Customer Number": "4711", "Severity": "high"}
    assert "structured-fields" in rules_of(result)


def test_structured_fields_from_anyone_else_are_ignored(db: Database, channel: int) -> None:
    configure(db, channel, **FIELDS)
    result = send(db, channel, sender="x@tools.example", body="Severity: high\n")
    assert the_case(db, result.case_id).fields == {}
    assert "fields-untrusted" in rules_of(result)


def test_structured_fields_can_require_a_trusted_dkim_pass(db: Database, channel: int) -> None:
    configure(db, channel, **FIELDS, require_dkim=True, trusted_authserv_ids=["mx.example.com"])
    spoofed = send(
        db,
        channel,
        sender="monitor@tools.example",
        body="Severity: high\n",
        headers={"Authentication-Results": "evil.example; dkim=pass header.d=tools.example"},
    )
    signed = send(
        db,
        channel,
        sender="monitor@tools.example",
        body="Severity: low\n",
        headers={"Authentication-Results": "mx.example.com; dkim=pass header.d=tools.example"},
    )
    assert the_case(db, spoofed.case_id).fields == {}
    assert the_case(db, signed.case_id).fields == {"Severity": "low"}


def test_decision_table_override_discards_out_of_office_mail(db: Database, channel: int) -> None:
    configure(db, channel, decisions={"auto-reply-no-case": "discard"})
    result = send(db, channel, headers={"Auto-Submitted": "auto-replied"})
    assert result.outcome == "discarded"
    assert "decision" in rules_of(result)


def test_rules_the_pipeline_cannot_follow_are_refused() -> None:
    with pytest.raises(ValueError, match="cannot be 'create-case'"):
        ChannelRules.model_validate({"decisions": {"auto-reply-no-case": "create-case"}})
    with pytest.raises(ValueError, match="at most 4"):
        ChannelRules.model_validate({"structured_fields": ["a", "b", "c", "d", "e"]})
