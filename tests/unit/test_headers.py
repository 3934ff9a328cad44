"""Header reading on real-world mail: encoded-words, 8-bit bytes and headers that make the
modern ``email`` parser raise, where ``HeaderReader`` falls back to the compat32 parse.

The malformed inputs below raise ``IndexError`` inside CPython 3.11's ``policy.default``
header parser; the fallback is what recovers their values.
"""

from __future__ import annotations

import email
from datetime import UTC, datetime
from email import policy

import pytest
from hypothesis import given
from hypothesis import strategies as st

from casemail.ingest.headers import HeaderReader, clean_text, message_ids, one_line
from casemail.ingest.parse import parse_message
from casemail.ingest.types import Address


def reader(*header_lines: bytes) -> HeaderReader:
    raw = b"\r\n".join(header_lines) + b"\r\n\r\nbody\r\n"
    return HeaderReader(email.message_from_bytes(raw, policy=policy.default), raw)


# clean_text


def test_clean_text_leaves_ordinary_text_alone() -> None:
    assert clean_text("Grüße, Ωμέγα – ok") == "Grüße, Ωμέγα – ok"


def test_clean_text_reads_escaped_8bit_bytes_as_utf8_when_valid() -> None:
    escaped = "Caf\xc3\xa9".encode("latin-1").decode("ascii", "surrogateescape")
    assert clean_text(escaped) == "Café"


def test_clean_text_reads_escaped_8bit_bytes_as_windows_1252_otherwise() -> None:
    escaped = b"Caf\xe9 \x80 5".decode("ascii", "surrogateescape")
    assert clean_text(escaped) == "Café € 5"


def test_clean_text_drops_nul() -> None:
    assert clean_text("a\x00b\x00") == "ab"


@given(st.binary())
def test_clean_text_always_yields_storable_text(data: bytes) -> None:
    """Whatever bytes a header carried: no surrogates (unencodable) and no NUL (PostgreSQL)."""
    cleaned = clean_text(data.decode("utf-8", "surrogateescape"))
    cleaned.encode("utf-8")
    assert "\x00" not in cleaned


@given(st.text(alphabet=st.characters(exclude_categories=["Cs"])))
def test_clean_text_keeps_valid_text_except_nul(text: str) -> None:
    assert clean_text(text) == text.replace("\x00", "")
    escaped = text.encode("utf-8").decode("ascii", "surrogateescape")
    assert clean_text(escaped) == text.replace("\x00", "")


def test_one_line_collapses_folding_whitespace() -> None:
    assert one_line("  Re:\r\n\tPrinter   on\n fire ") == "Re: Printer on fire"


# message_ids


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("<a@b.example>", ("a@b.example",)),
        (
            "<a@b.example> <c@d.example>\r\n\t<e@f.example>",
            ("a@b.example", "c@d.example", "e@f.example"),
        ),
        ("<a@b.example>,<c@d.example>", ("a@b.example", "c@d.example")),
        ("a@b.example", ("a@b.example",)),
        ("  a@b.example  ", ("a@b.example",)),
        ("some words, no id", ()),
        ("<>", ()),
        ("<@>", ()),
        ("<left@>", ()),
        ("<@right.example> <ok@b.example>", ("ok@b.example",)),
        ("", ()),
        (None, ()),
    ],
)
def test_message_ids(value: str | None, expected: tuple[str, ...]) -> None:
    assert message_ids(value) == expected


# Encoded-words (RFC 2047) and 8-bit headers (RFC 6532)


@pytest.mark.parametrize(
    ("subject", "expected"),
    [
        (b"=?iso-8859-1?q?Caf=E9?=", "Café"),
        (b"=?UTF-8?B?Q2Fmw6k=?=", "Café"),
        (b"Re: =?utf-8?q?Caf=C3=A9?= order", "Re: Café order"),
        # Whitespace between adjacent encoded-words is not part of the text (section 6.2).
        (b"=?utf-8?q?Pri?= =?utf-8?q?nter?=", "Printer"),
        (b"=?utf-8?q?Printer_on_fire?=", "Printer on fire"),
        (b"=?koi8-r?b?8NLJztTF0g==?=", "Принтер"),
        # Raw UTF-8 in a header field (RFC 6532).
        (b"Caf\xc3\xa9", "Café"),
    ],
)
def test_encoded_words_are_decoded(subject: bytes, expected: str) -> None:
    assert reader(b"Subject: " + subject).text("Subject") == expected


def test_encoded_word_in_an_unknown_charset_does_not_raise() -> None:
    text = reader(b"Subject: Order =?x-no-such-charset?q?abc?=").text("Subject")
    assert text is not None
    assert text.startswith("Order ")
    assert "abc" in text


def test_nul_inside_a_header_is_dropped() -> None:
    assert reader(b"Subject: =?utf-8?q?a=00b?= c\x00d").text("Subject") == "ab cd"


def test_missing_header_is_none() -> None:
    r = reader(b"From: alice@customer.example")
    assert r.text("Subject") is None
    assert r.addresses("Cc") == ()
    assert r.date() is None
    assert r.defects == []


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (
            b"=?utf-8?q?J=C3=B6rg?= <jorg@customer.example>",
            Address("jorg@customer.example", "Jörg"),
        ),
        (
            b'"=?utf-8?q?J=C3=B6rg?=" <jorg@customer.example>',
            Address("jorg@customer.example", "Jörg"),
        ),
        (b"J\xc3\xb6rg <jorg@customer.example>", Address("jorg@customer.example", "Jörg")),
        (b"Ren\xe9 <rene@customer.example>", Address("rene@customer.example", "René")),
        (
            b'"Example, Alice" <alice@customer.example>',
            Address("alice@customer.example", "Example, Alice"),
        ),
        (b"alice@customer.example", Address("alice@customer.example")),
    ],
)
def test_display_names_are_decoded(value: bytes, expected: Address) -> None:
    assert reader(b"From: " + value).addresses("From") == (expected,)


def test_address_list_keeps_every_mailbox() -> None:
    found = reader(b"To: support@example.com, Bob <bob@customer.example>").addresses("To")
    assert found == (Address("support@example.com"), Address("bob@customer.example", "Bob"))


@pytest.mark.parametrize(
    "value", [b"undisclosed-recipients:;", b"Alice <alice>", b"<>", b"@", b"Alice"]
)
def test_no_usable_address(value: bytes) -> None:
    assert reader(b"From: " + value).addresses("From") == ()


# The compat32 fallback


@pytest.mark.parametrize("value", [b"<@>", b"<>", b"<"])
def test_plain_message_ids_are_read_as_sent(value: bytes) -> None:
    """Plain ASCII values never reach the modern parser (which raises on these)."""
    r = reader(b"From: alice@customer.example", b"Message-ID: " + value)
    assert r.text("Message-ID") == value.decode()
    assert r.defects == []


@pytest.mark.parametrize("value", [b"<@>=?", b"<>=?"])
def test_message_id_the_modern_parser_cannot_read_falls_back(value: bytes) -> None:
    r = reader(b"From: alice@customer.example", b"Message-ID: " + value)
    assert r.text("Message-ID") == value.decode()
    assert len(r.defects) == 1
    assert r.defects[0].startswith("Message-ID: IndexError")


def test_address_header_the_modern_parser_cannot_read_falls_back() -> None:
    r = reader(b"From: Alice Example <alice@customer.example>, <")
    assert r.addresses("From") == (Address("alice@customer.example", "Alice Example"),)
    assert any(d.startswith("From: ") for d in r.defects)


def test_fallback_decodes_encoded_words() -> None:
    r = reader(b"From: =?utf-8?q?J=C3=B6rg?= <jorg@customer.example>, <")
    assert r.text("From") == "Jörg <jorg@customer.example>, <"
    assert r.addresses("From") == (Address("jorg@customer.example", "Jörg"),)


def test_fallback_keeps_an_undecodable_encoded_word_as_sent() -> None:
    r = reader(b"From: =?x-no-such-charset?q?a\x00bc?= <alice@customer.example>, <")
    assert r.text("From") == "=?x-no-such-charset?q?abc?= <alice@customer.example>, <"
    assert r.defects == ["From: IndexError in modern parser"]


def test_reader_over_a_compat32_message_reads_what_the_modern_parser_reads() -> None:
    """``parse`` hands HeaderReader a compat32 message; values are parsed all the same."""
    raw = b"From: =?utf-8?q?J=C3=B6rg?= <jorg@customer.example>\r\nTo: a@b.example\r\n\r\nx\r\n"
    r = HeaderReader(email.message_from_bytes(raw, policy=policy.compat32), raw)
    assert r.addresses("From") == (Address("jorg@customer.example", "Jörg"),)
    assert r.addresses("To") == (Address("a@b.example"),)
    assert r.defects == []


# Date


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (b"Mon, 01 Jan 2024 10:00:00 +0000", datetime(2024, 1, 1, 10, tzinfo=UTC)),
        (b"Mon, 01 Jan 2024 12:00:00 +0200", datetime(2024, 1, 1, 10, tzinfo=UTC)),
        (b"Sun, 31 Dec 2023 21:00:00 -1300", datetime(2024, 1, 1, 10, tzinfo=UTC)),
        # RFC 5322 section 3.3: -0000 is UTC with no zone information.
        (b"Mon, 01 Jan 2024 10:00:00 -0000", datetime(2024, 1, 1, 10, tzinfo=UTC)),
        (b"1 Jan 2024 10:00 GMT", datetime(2024, 1, 1, 10, tzinfo=UTC)),
    ],
)
def test_date_is_utc(value: bytes, expected: datetime) -> None:
    r = reader(b"Date: " + value)
    found = r.date()
    assert found == expected
    assert found is not None
    assert found.tzinfo is UTC
    assert r.defects == []


@pytest.mark.parametrize(
    "value",
    [
        b"next tuesday",
        b"Mon, 32 Jan 2024 10:00:00 +0000",
        b"Mon, 01 Jan 2024 25:00:00 +0000",
        # Out of datetime's range once moved to UTC, and a year past any int.
        b"Fri, 31 Dec 9999 23:59:59 -0100",
        b"Mon, 1 Jan 99999999999999999999 10:00:00 +0000",
    ],
)
def test_unusable_date_is_none_with_a_defect(value: bytes) -> None:
    r = reader(b"Date: " + value)
    assert r.date() is None
    assert "Date: unparseable" in r.defects


# Through parse_message: bad headers never stop a parse.


def test_parse_message_survives_malformed_headers() -> None:
    raw = (
        b"From: =?utf-8?q?J=C3=B6rg?= <jorg@customer.example>, <\r\n"
        b"To: support@example.com\r\n"
        b"Subject: =?iso-8859-1?q?R=E9clamation?=\r\n"
        b"Message-ID: <\r\n"
        b"In-Reply-To: <orig@example.com>\r\n"
        b"References: <first@example.com>\r\n <orig@example.com>\r\n"
        b"Date: Fri, 31 Dec 9999 23:59:59 -0100\r\n"
        b"\r\n"
        b"Bonjour\r\n"
    )
    parsed = parse_message(raw)
    assert parsed.sender == Address("jorg@customer.example", "Jörg")
    assert parsed.subject == "Réclamation"
    assert parsed.in_reply_to == "orig@example.com"
    assert parsed.references == ("first@example.com", "orig@example.com")
    assert parsed.date is None
    assert parsed.text_body == "Bonjour\r\n"
    assert any(d.startswith("From: ") for d in parsed.defects)
    assert "Date: unparseable" in parsed.defects
