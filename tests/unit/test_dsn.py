"""Bounces and DSNs: the samples in tests/data/dsn, read exactly, and hostile input read
with bounded work and no exception.

Each sample is read twice, as written (LF) and with CRLF line ends as SMTP delivers it.
"""

from __future__ import annotations

import base64
from dataclasses import dataclass
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from casemail.ingest.dsn import (
    ACTIONS,
    MAX_REASON,
    BounceReport,
    RecipientStatus,
    looks_like_bounce,
    read_bounce,
)
from casemail.ingest.dsn_reason import diagnostic_words
from casemail.ingest.parse import parse_message

DATA = Path(__file__).resolve().parent.parent / "data" / "dsn"


@dataclass(frozen=True)
class Expected:
    ids: tuple[str, ...]
    recipients: tuple[RecipientStatus, ...]
    standard: bool
    failed: bool
    permanent: bool
    reason: str


def failed(
    address: str, status: str | None, diagnostic: str | None, remote: str | None = None
) -> RecipientStatus:
    return RecipientStatus(address, "failed", status, diagnostic, remote)


CASES: dict[str, Expected | None] = {
    "postfix_user_unknown.eml": Expected(
        ids=("cm.1042.7f3a9c1e@helpdesk.example",),
        recipients=(
            failed(
                "bob@example.org",
                "5.1.1",
                "smtp; 550 5.1.1 <bob@example.org>: Recipient address rejected: "
                "User unknown in local recipient table",
                "mx.example.org",
            ),
        ),
        standard=True,
        failed=True,
        permanent=True,
        reason="bob@example.org: 5.1.1 Recipient address rejected: "
        "User unknown in local recipient table (550)",
    ),
    "exchange_ndr.eml": Expected(
        ids=("cm.2210.0b4d77aa@helpdesk.example",),
        recipients=(
            failed(
                "carol@contoso.example",
                "5.1.10",
                "smtp;550 5.1.10 RESOLVER.ADR.RecipientNotFound; Recipient not found by SMTP "
                "address lookup",
            ),
        ),
        standard=True,
        failed=True,
        permanent=True,
        reason="carol@contoso.example: 5.1.10 RESOLVER.ADR.RecipientNotFound; Recipient not "
        "found by SMTP address lookup (550)",
    ),
    "gmail_failure.eml": Expected(
        ids=("cm.3307.c9e1f0d2@helpdesk.example",),
        recipients=(
            failed(
                "dave@example.com",
                "5.1.1",
                "smtp; 550-5.1.1 The mailbox you tried to reach does not exist. Check the "
                "550-5.1.1 spelling of the address and try again. For more help, visit "
                "550 5.1.1  https://support.example.com/mail/?p=NoSuchUser "
                "5b1f17b1804b1-42159fa1c8fsi.204 - gsmtp",
                "mx1.example.com",
            ),
        ),
        standard=True,
        failed=True,
        permanent=True,
        reason="dave@example.com: 5.1.1 The mailbox you tried to reach does not exist. Check "
        "the spelling of the address and try again. For more help, visit "
        "https://support.example.com/mail/?p=NoSuchUser (550)",
    ),
    "exim_failed_recipients.eml": Expected(
        ids=("cm.4415.a7c3e9b0@helpdesk.example",),
        recipients=(
            failed(
                "erin@example.net",
                "5.1.1",
                "550 5.1.1 <erin@example.net>: Recipient address rejected: Mailbox does not exist",
                "mx2.example.net",
            ),
        ),
        standard=False,
        failed=True,
        permanent=True,
        reason="erin@example.net: 5.1.1 Recipient address rejected: Mailbox does not exist (550)",
    ),
    "qmail_failure_notice.eml": Expected(
        ids=("cm.5120.33dd0e6f@helpdesk.example",),
        recipients=(
            failed(
                "frank@old-isp.example", "5.1.1", "Sorry, no mailbox here by that name. (#5.1.1)"
            ),
            failed(
                "grace@partner.example",
                "5.7.1",
                "554 5.7.1 <grace@partner.example>: Relay access denied",
            ),
        ),
        standard=False,
        failed=True,
        permanent=True,
        reason="frank@old-isp.example: 5.1.1 Sorry, no mailbox here by that name.; "
        "grace@partner.example: 5.7.1 Relay access denied (554)",
    ),
    "postfix_delayed.eml": Expected(
        ids=("cm.5301.e1f2a3b4@helpdesk.example",),
        recipients=(
            RecipientStatus(
                "harry@slow.example",
                "delayed",
                "4.4.7",
                "X-Postfix; connect to mx.slow.example[192.0.2.130]:25: Connection timed out",
                None,
            ),
        ),
        standard=True,
        failed=False,
        permanent=False,
        reason="harry@slow.example (delayed): 4.4.7 connect to mx.slow.example[192.0.2.130]:25: "
        "Connection timed out",
    ),
    "sendmail_headers_only.eml": Expected(
        ids=("cm.5515.0c1d2e3f@helpdesk.example",),
        recipients=(
            failed(
                "judy@partner.example",
                "5.2.2",
                "SMTP; 552 5.2.2 <judy@partner.example>... Mailbox full",
                "store.partner.example",
            ),
            failed("kim@partner.example", "5.7.1", None),
        ),
        standard=True,
        failed=True,
        permanent=True,
        reason="judy@partner.example: 5.2.2 Mailbox full (552); "
        "kim@partner.example: 5.7.1 delivery not authorized, message refused",
    ),
    "truncated_report.eml": Expected(
        ids=(),
        recipients=(failed("mike@example.org", None, None),),
        standard=True,
        failed=True,
        permanent=True,
        reason="mike@example.org: delivery failed",
    ),
    "garbage_status.eml": Expected(
        ids=("cm.5740.5e6f7a8b@helpdesk.example",),
        recipients=(
            failed(
                "Oscar@garbage.example",
                "5.1.2",
                "smtp; 550 5.1.2 Host unknown (Name server: garbage.example: host not found)",
            ),
        ),
        standard=True,
        failed=True,
        permanent=True,
        reason="Oscar@garbage.example: 5.1.2 Host unknown (Name server: garbage.example: host "
        "not found) (550)",
    ),
    "deep_nesting.eml": Expected(
        ids=("cm.5850.aa11bb22@helpdesk.example",),
        recipients=(failed("nick@example.org", "5.1.1", "smtp; 550 5.1.1 User unknown"),),
        standard=True,
        failed=True,
        permanent=True,
        reason="nick@example.org: 5.1.1 User unknown (550)",
    ),
    "human_mentions_undeliverable.eml": None,
    "read_receipt_mdn.eml": None,
}


def load(name: str, *, crlf: bool = False) -> bytes:
    raw = (DATA / name).read_bytes()
    return raw.replace(b"\n", b"\r\n") if crlf else raw


def test_every_sample_has_an_expectation() -> None:
    assert sorted(p.name for p in DATA.glob("*.eml")) == sorted(CASES)


@pytest.mark.parametrize("crlf", [False, True], ids=["lf", "crlf"])
@pytest.mark.parametrize("name", sorted(CASES))
def test_read_bounce_sample(name: str, crlf: bool) -> None:
    report = read_bounce(load(name, crlf=crlf))
    expected = CASES[name]
    if expected is None:
        assert report is None
        return
    assert report is not None
    assert report.original_message_ids == expected.ids
    assert report.recipients == expected.recipients
    assert report.standard is expected.standard
    assert report.failed is expected.failed
    assert report.permanent is expected.permanent
    assert report.reason() == expected.reason


@pytest.mark.parametrize("name", sorted(CASES))
def test_pre_check_on_parsed_sample_agrees(name: str) -> None:
    """``looks_like_bounce`` on what the parse stage gives never skips a bounce."""
    parsed = parse_message(load(name, crlf=True))
    looks = looks_like_bounce(
        content_type=parsed.content_type,
        header_fields=parsed.header_fields,
        sender=parsed.sender.email if parsed.sender else None,
        subject=parsed.subject,
    )
    if CASES[name] is not None:
        assert looks
    if name == "human_mentions_undeliverable.eml":
        assert not looks


@pytest.mark.parametrize(
    ("content_type", "fields", "sender", "subject", "expected"),
    [
        ("multipart/report", {}, "ivan@customer.example", "Hello", True),
        ("Multipart/Report ", {}, "ivan@customer.example", "Hello", True),
        ("text/plain", {"return-path": "<>"}, "x@example.org", "Hello", True),
        ("text/plain", {"return-path": "<MAILER-DAEMON@mx.example>"}, None, "", True),
        ("text/plain", {"x-failed-recipients": "a@example.org"}, "x@example.org", "", True),
        ("text/plain", {}, "Mailer-Daemon@mx.example", "anything", True),
        ("text/plain", {}, "POSTMASTER@example.org", "anything", True),
        ("text/plain", {}, None, "Undelivered Mail Returned to Sender", True),
        ("text/plain", {}, None, "Hello", False),
        ("text/plain", {}, "postmaster-team@example.org", "Returned mail", False),
        ("text/plain", {}, "daemon@example.org", "failure notice", False),
        (
            "text/plain",
            {"return-path": "<ivan@customer.example>"},
            "ivan@customer.example",
            "Re: Undeliverable: Mail delivery failed",
            False,
        ),
    ],
)
def test_looks_like_bounce(
    content_type: str, fields: dict[str, str], sender: str | None, subject: str, expected: bool
) -> None:
    assert (
        looks_like_bounce(
            content_type=content_type, header_fields=fields, sender=sender, subject=subject
        )
        is expected
    )


@pytest.mark.parametrize(
    ("diagnostic", "words", "code"),
    [
        ("smtp; 550 5.1.1 User unknown", "User unknown", "550"),
        (
            "smtp;550-5.1.1 first line\n 550-5.1.1 second\n 550 5.1.1 last",
            "first line second last",
            "550",
        ),
        ("SMTP; 552 5.2.2 <judy@partner.example>... Mailbox full", "Mailbox full", "552"),
        ("X-Postfix; delivery temporarily suspended", "delivery temporarily suspended", None),
        (
            "5.1.1 Sorry, no mailbox here by that name. (#5.1.1)",
            "Sorry, no mailbox here by that name.",
            None,
        ),
        ("smtp; 550 5.7.1 denied xyz.1 - gsmtp", "denied", "550"),
        ("Call 555-0100 (office hours)", "Call 555-0100 (office hours)", None),
        ("", "", None),
    ],
)
def test_diagnostic_words(diagnostic: str, words: str, code: str | None) -> None:
    assert diagnostic_words(diagnostic) == (words, code)


def _variant(name: str, old: bytes, new: bytes) -> bytes:
    raw = load(name)
    assert old in raw
    return raw.replace(old, new)


def test_failed_with_a_temporary_status_is_failed_but_not_permanent() -> None:
    """RFC 3464 section 2.3.3: an MTA gives up (failed) on a persistent transient (4.x.x)."""
    report = read_bounce(_variant("postfix_delayed.eml", b"Action: delayed", b"Action: failed"))
    assert report is not None
    assert (report.failed, report.permanent) == (True, False)
    assert report.reason().startswith("harry@slow.example: 4.4.7 connect to")


def test_base64_delivery_status_part_is_decoded() -> None:
    raw = load("postfix_user_unknown.eml")
    start = raw.index(b"Reporting-MTA:")
    end = raw.index(b"\n--", start)
    encoded = base64.encodebytes(raw[start:end])
    raw = raw[:start] + encoded + raw[end:]
    raw = raw.replace(
        b"Content-Type: message/delivery-status\n",
        b"Content-Type: message/delivery-status\nContent-Transfer-Encoding: base64\n",
    )
    report = read_bounce(raw)
    assert report is not None
    assert report.standard
    assert [(r.address, r.status) for r in report.recipients] == [("bob@example.org", "5.1.1")]


def test_report_wrapped_by_a_gateway_is_read() -> None:
    report_raw = load("postfix_user_unknown.eml")
    head, _, body = report_raw.partition(b"\n\n")
    inner_type = head[
        head.index(b"Content-Type: multipart/report") : head.index(b"Content-Transfer")
    ]
    outer = head.replace(inner_type, b'Content-Type: multipart/mixed; boundary="GW"\n')
    raw = (
        outer
        + b"\n\n--GW\n"
        + inner_type
        + b"\n"
        + body
        + b"\n--GW\nContent-Type: text/plain\n\nScanned by the gateway.\n--GW--\n"
    )
    report = read_bounce(raw)
    assert report is not None
    assert report.standard
    assert report.original_message_ids == ("cm.1042.7f3a9c1e@helpdesk.example",)


def test_report_cut_before_the_status_part_is_read_from_its_text() -> None:
    raw = load("postfix_user_unknown.eml")
    report = read_bounce(raw[: raw.index(b"Content-Description: Delivery report")])
    assert report == BounceReport(
        (),
        (
            failed(
                "bob@example.org",
                "5.1.1",
                "550 5.1.1 <bob@example.org>: Recipient address rejected: User unknown in local "
                "recipient table (in reply to RCPT TO command)",
                "mx.example.org",
            ),
        ),
        standard=False,
    )


def test_a_report_without_recipients_is_no_failure() -> None:
    raw = _variant("postfix_delayed.eml", b"Final-Recipient: rfc822; harry@slow.example\n", b"")
    raw = raw.replace(b"Original-Recipient: rfc822;harry@slow.example\n", b"")
    raw = raw.replace(b"Subject: Delayed Mail (still being retried)", b"Subject: Status")
    report = read_bounce(raw)
    assert report == BounceReport(("cm.5301.e1f2a3b4@helpdesk.example",), (), standard=True)
    assert (report.failed, report.permanent) == (False, False)
    assert report.reason() == "delivery status report with no recipient"


@pytest.mark.parametrize("name", sorted(n for n, e in CASES.items() if e is not None))
def test_truncated_anywhere_never_raises_nor_keeps_a_cut_id(name: str) -> None:
    raw = load(name)
    for end in range(0, len(raw), max(1, len(raw) // 200)):
        report = read_bounce(raw[:end])
        if report is not None:
            _check_invariants(report)


def _check_invariants(report: BounceReport) -> None:
    assert len(report.reason()) <= MAX_REASON
    for msg_id in report.original_message_ids:
        assert "@" in msg_id
        assert not set(msg_id) & set("<> \t\r\n")
    for recipient in report.recipients:
        assert recipient.action in ACTIONS
        assert "@" in recipient.address


HOSTILE_HEAD = (
    b"Return-Path: <>\nFrom: MAILER-DAEMON@mx.example\nTo: support@helpdesk.example\n"
    b"Subject: Undelivered Mail Returned to Sender\n"
)
REPORT_HEAD = HOSTILE_HEAD + (
    b"Content-Type: multipart/report; report-type=delivery-status; boundary=T\n\n"
)


@pytest.mark.parametrize(
    "raw",
    [
        REPORT_HEAD
        + b"".join(
            b"--b%d\nContent-Type: multipart/mixed; boundary=b%d\n\n" % (i, i + 1)
            for i in range(1000)
        ),
        REPORT_HEAD
        + b"--T\nContent-Type: message/rfc822\n\n"
        + b"Content-Type: message/rfc822\n\n" * 3000,
        REPORT_HEAD
        + b"--T\nContent-Type: message/delivery-status\n\nFinal-Recipient: rfc822; a@b.example\n"
        + b" x\n" * 300_000,
        REPORT_HEAD + b"--T\nContent-Type: message/delivery-status\n\n" + b"A: b\n\n" * 500_000,
        HOSTILE_HEAD + b"\n" + b"a.b-c" * 400_000,
        HOSTILE_HEAD + b"\n" + b"x@" + b"a." * 500_000,
        HOSTILE_HEAD + b"\n" + b"550 5.1.1 x\n" * 200_000,
        bytes(range(256)) * 4000,
    ],
    ids=[
        "multipart-1000-deep",
        "rfc822-3000-deep",
        "folded",
        "blocks",
        "address-run",
        "dots",
        "replies",
        "binary",
    ],
)
@pytest.mark.timeout(60)
def test_hostile_input_costs_bounded_time(raw: bytes) -> None:
    # A hang guard, not a speed target (that would be a benchmark): on a quiet machine the
    # worst of these takes about 1.3 s; anything quadratic in them would run for hours.
    report = read_bounce(raw)
    if report is not None:
        _check_invariants(report)


def test_recipients_and_reason_are_capped() -> None:
    block = b"Final-Recipient: rfc822; r%d@example.org\nAction: failed\nStatus: 5.1.1\n\n"
    raw = REPORT_HEAD + b"--T\nContent-Type: message/delivery-status\n\n"
    raw += b"".join(block % i for i in range(1000)) + b"--T--\n"
    report = read_bounce(raw)
    assert report is not None
    assert len(report.recipients) == 100
    assert len(report.reason()) == MAX_REASON
    assert report.reason().endswith("…")


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=4000))
def test_random_bytes_never_raise(data: bytes) -> None:
    for raw in (data, REPORT_HEAD + data, HOSTILE_HEAD + b"\n" + data):
        report = read_bounce(raw)
        if report is not None:
            _check_invariants(report)


@settings(max_examples=200, deadline=None)
@given(
    st.sampled_from(sorted(n for n, e in CASES.items() if e is not None)),
    st.integers(min_value=0, max_value=10_000),
    st.binary(min_size=1, max_size=40),
)
def test_samples_with_bytes_spliced_in_never_raise(name: str, at: int, junk: bytes) -> None:
    raw = load(name)
    at %= len(raw)
    report = read_bounce(raw[:at] + junk + raw[at:])
    if report is not None:
        _check_invariants(report)
