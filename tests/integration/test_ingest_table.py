"""Table-driven threading, classification and routing: each case is a small .eml under
``tests/data/ingest`` with its expected outcome. Placeholders in the files (``{case_a}``,
``{agent_id}``, ``{marker_a}``, …) are filled from the scenario every test starts from:

- channel support@example.com (team "Support", acknowledgements on) and channel
  sales@example.com (team "Sales");
- case A on support, opened by ``first.eml`` from ann@customer.example, acknowledged;
- an agent's answer on case A, sent to ann.old@customer.example (outbox, state sent);
- case B on sales, from ann@customer.example.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from sqlalchemy import func, select

from casemail.channels.rules import ChannelRules
from casemail.channels.service import add_channel, set_rules
from casemail.db import Database
from casemail.db.models import Case, InboundReceipt, Message, OutboxEntry
from casemail.identity import load_identity
from casemail.ingest import IngestResult, Source, ingest_raw
from casemail.outbound.compose import Draft
from casemail.outbound.queue import enqueue
from casemail.users.service import create_team

DATA = Path(__file__).parent.parent / "data" / "ingest"
SMTP = Source("smtp", envelope_from="someone@example.net", envelope_to=(), peer="192.0.2.1")


@dataclass
class Scenario:
    db: Database
    support: int
    sales: int
    case_a: int
    case_b: int
    agent_outbox_id: int
    values: dict[str, str] = field(default_factory=dict)

    def ingest(self, name: str, channel: int | None = None) -> IngestResult:
        text = (DATA / name).read_text().format(**self.values)
        raw = text.replace("\r\n", "\n").replace("\n", "\r\n").encode()
        return ingest_raw(self.db, channel or self.support, raw, SMTP)

    def count(self, query: object) -> int:
        with self.db.read() as session:
            return int(session.scalar(query) or 0)  # type: ignore[call-overload]


def _channels(db: Database) -> tuple[int, int]:
    with db.write() as session:
        support_team = create_team(session, name="Support")
        sales_team = create_team(session, name="Sales")
        session.flush()
        support = add_channel(session, address="support@example.com")
        sales = add_channel(session, address="sales@example.com", subject_tag_prefix="Case")
        session.flush()
        set_rules(
            session,
            support.id,
            ChannelRules(team_id=support_team.id, acknowledge_new_cases=True),
        )
        set_rules(session, sales.id, ChannelRules(team_id=sales_team.id))
        return support.id, sales.id


def _agent_answer(db: Database, case_id: int, channel_id: int) -> tuple[int, str]:
    with db.write() as session:
        draft = Draft(
            kind="agent",
            from_address="support@example.com",
            from_name="Support",
            to=("ann.old@customer.example",),
            subject=f"[Case #{case_id}] Printer on floor 3 is broken",
            text="Please try again now.",
            case_id=case_id,
            in_reply_to="first-4711@mail.customer.example",
        )
        entry = enqueue(
            session,
            draft,
            identity=load_identity(session),
            account=None,
            channel_id=channel_id,
            account_role="global",
        )
        entry.state = "sent"
        entry.last_error = None
        session.flush()
        return entry.id, entry.message_id


@pytest.fixture
def scenario(db: Database) -> Scenario:
    support, sales = _channels(db)
    first = (DATA / "first.eml").read_bytes().replace(b"\n", b"\r\n")
    case_a = ingest_raw(db, support, first, SMTP).case_id
    quote = first.replace(b"first-4711", b"quote-1").replace(
        b"Printer on floor 3 is broken", b"Quote for 40 chairs"
    )
    case_b = ingest_raw(db, sales, quote, SMTP).case_id
    assert case_a is not None
    assert case_b is not None
    agent_outbox_id, agent_id = _agent_answer(db, case_a, support)
    with db.read() as session:
        identity = load_identity(session)
        ack_id = session.scalars(
            select(OutboxEntry.message_id).where(OutboxEntry.kind == "acknowledgement")
        ).one()
    values = {
        "case_a": str(case_a),
        "case_b": str(case_b),
        "agent_id": agent_id,
        "ack_id": ack_id,
        "token_a": identity.token(case_a),
        "marker_a": identity.marker(case_a),
        "instance_id": identity.instance_id,
    }
    return Scenario(db, support, sales, case_a, case_b, agent_outbox_id, values)


Check = Callable[[Scenario, IngestResult], None]


def _acks(s: Scenario) -> int:
    return s.count(
        select(func.count()).select_from(OutboxEntry).where(OutboxEntry.kind == "acknowledgement")
    )


def _no_new_ack(s: Scenario, result: IngestResult) -> None:
    assert _acks(s) == 1  # only case A's, from the scenario


def _one_new_ack(s: Scenario, result: IngestResult) -> None:
    assert _acks(s) == 2


def _agent_mail_failed(s: Scenario, result: IngestResult) -> None:
    with s.db.read() as session:
        entry = session.get_one(OutboxEntry, s.agent_outbox_id)
        message = session.get_one(Message, result.message_pk)
    assert entry.state == "error"
    assert entry.last_error is not None
    assert "ann.old@customer.example" in entry.last_error
    assert "5.1.1" in entry.last_error
    assert message.reports_on_outbox_id == s.agent_outbox_id


def _agent_mail_untouched(s: Scenario, result: IngestResult) -> None:
    with s.db.read() as session:
        entry = session.get_one(OutboxEntry, s.agent_outbox_id)
        message = session.get_one(Message, result.message_pk)
    assert entry.state == "sent"
    assert message.reports_on_outbox_id is None


def _linked_to_b(s: Scenario, result: IngestResult) -> None:
    with s.db.read() as session:
        case = session.get_one(Case, result.case_id)
    assert case.linked_case_id == s.case_b
    assert case.channel_id == s.support


def _forward_kept_whole(s: Scenario, result: IngestResult) -> None:
    with s.db.read() as session:
        message = session.get_one(Message, result.message_pk)
        assert [a.content_type for a in message.attachments] == ["message/rfc822"]


def _discarded_receipt(s: Scenario, result: IngestResult) -> None:
    with s.db.read() as session:
        receipt = session.get_one(InboundReceipt, result.inbound_id)
    assert receipt.state == "discarded"
    assert receipt.rule_hits
    assert receipt.rule_hits[0]["rule"] == "loop-header"


@dataclass(frozen=True)
class Expected:
    file: str
    outcome: str
    case: str | None  # "a", "b", "new" or None (no case)
    rules: tuple[str, ...]  # must all be among the rule hits
    classification: str | None = None
    check: Check | None = None


TABLE = [
    Expected("outlook_reply.eml", "appended", "a", ("thread-references",), "normal", _no_new_ack),
    Expected("gmail_reply.eml", "appended", "a", ("thread-references",), "normal"),
    Expected("rewritten_id_reply.eml", "appended", "a", ("thread-marker",), "normal"),
    Expected("reply_token.eml", "appended", "a", ("thread-reply-token",), "normal"),
    Expected("forwarded.eml", "created", "new", ("create-case",), "normal", _forward_kept_whole),
    Expected("newsletter.eml", "quarantined", None, ("list-header", "precedence", "decision")),
    Expected("newsletter_reply.eml", "created", "new", ("create-case",), "normal", _one_new_ack),
    Expected("ooo_to_ack.eml", "appended", "a", ("auto-submitted",), "auto-reply", _no_new_ack),
    Expected("ooo_no_case.eml", "quarantined", None, ("auto-submitted", "x-autoreply")),
    Expected("dsn_for_sent.eml", "appended", "a", ("bounce",), "bounce", _agent_mail_failed),
    # A bounce quoting our Message-ID for an address we never wrote to: kept, but it does
    # not mark our message failed.
    Expected(
        "dsn_forged.eml", "appended", "a", ("bounce-foreign",), "bounce", _agent_mail_untouched
    ),
    Expected("dsn_unknown.eml", "quarantined", None, ("bounce", "decision")),
    Expected(
        "other_team_tag.eml", "created", "new", ("subject-tag-other-team",), None, _linked_to_b
    ),
    Expected("tag_untrusted.eml", "created", "new", ("subject-tag-untrusted", "create-case")),
    Expected("tag_trusted.eml", "appended", "a", ("thread-subject-tag",), "normal"),
    Expected("loop.eml", "discarded", None, ("loop-header", "decision"), None, _discarded_receipt),
]


@pytest.mark.parametrize("expected", TABLE, ids=[e.file.removesuffix(".eml") for e in TABLE])
def test_threading_classification_routing(scenario: Scenario, expected: Expected) -> None:
    result = scenario.ingest(expected.file)

    assert result.outcome == expected.outcome, result
    fired = {hit.rule for hit in result.rule_hits}
    assert set(expected.rules) <= fired, fired
    wanted_case = {"a": scenario.case_a, "b": scenario.case_b}.get(expected.case or "")
    if expected.case == "new":
        assert result.case_id not in (None, scenario.case_a, scenario.case_b)
    else:
        assert result.case_id == wanted_case
    if expected.classification is not None:
        with scenario.db.read() as session:
            message = session.get_one(Message, result.message_pk)
        assert message.classification == expected.classification
    if expected.check is not None:
        expected.check(scenario, result)
