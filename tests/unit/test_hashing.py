"""Dedupe inputs: ``content_hash``, ``dedupe_key`` and the Message-ID sniffed for the key.

Two deliveries of one message differ in their trace fields (a Received line per hop, RFC
5321 section 4.4) and in line endings (CRLF on the wire, LF in files); neither may make
them different messages. Anything else that differs must.
"""

from __future__ import annotations

import re

from hypothesis import assume, given
from hypothesis import strategies as st

from casemail.ingest.hashing import TRACE_FIELDS, content_hash, dedupe_key
from casemail.ingest.receipt import sniff_message_id

HEADERS = [
    b"From: Alice Example <alice@customer.example>",
    b"To: support@example.com",
    b"Subject: Printer on fire",
    b"Date: Mon, 01 Jan 2024 10:00:00 +0000",
    b"Message-ID: <m1@customer.example>",
]
BODY = [b"Please help.", b"", b"-- ", b"Alice"]


def build(headers: list[bytes], body: list[bytes], eol: bytes = b"\n") -> bytes:
    return eol.join(headers) + eol + eol + eol.join(body) + eol


PLAIN = build(HEADERS, BODY)


def test_hash_is_sha256_hex() -> None:
    assert re.fullmatch(r"[0-9a-f]{64}", content_hash(PLAIN))


def test_crlf_and_lf_copies_hash_the_same() -> None:
    assert content_hash(build(HEADERS, BODY, b"\r\n")) == content_hash(PLAIN)


def test_every_trace_field_is_ignored() -> None:
    trace = [
        b"Received: from mx1.relay.example (mx1.relay.example [192.0.2.1])",
        b"\tby mx.example.com with ESMTPS id 4Xyz; Mon, 01 Jan 2024 10:00:01 +0000",
        b"Return-Path: <alice@customer.example>",
        b"Delivered-To: support@example.com",
        b"X-Original-To: support@example.com",
        b"X-Received: by 2002:a05:6000:1:b0 with SMTP id x1",
        b"Authentication-Results: mx.example.com; spf=pass smtp.mailfrom=customer.example",
        b"ARC-Seal: i=1; a=rsa-sha256; t=1704103201; cv=none; d=relay.example; s=arc; b=AAAA",
        b"ARC-Message-Signature: i=1; a=rsa-sha256; c=relaxed/relaxed; d=relay.example; b=BBBB",
        b"ARC-Authentication-Results: i=1; mx.example.com; dkim=pass",
    ]
    assert content_hash(build(trace + HEADERS, BODY)) == content_hash(PLAIN)


def test_trace_field_names_match_case_insensitively() -> None:
    traced = build([b"RECEIVED: from a by b", b"return-path: <x@y.example>", *HEADERS], BODY)
    assert content_hash(traced) == content_hash(PLAIN)


def test_folded_continuation_lines_of_a_trace_field_are_ignored_with_it() -> None:
    """Each hop folds its Received line its own way; the continuation lines belong to it."""
    hop_a = [b"Received: from a.example", b"    by b.example; Mon, 1 Jan 2024 10:00:00 +0000"]
    hop_b = [b"Received: from c.example", b"\tby d.example", b"\twith LMTP id 99"]
    assert content_hash(build(hop_a + HEADERS, BODY)) == content_hash(
        build(HEADERS[:2] + hop_b + HEADERS[2:], BODY, b"\r\n")
    )


def test_folded_non_trace_field_still_counts() -> None:
    folded = [*HEADERS[:2], b"Subject: Printer", b" on fire", *HEADERS[3:]]
    other = [*HEADERS[:2], b"Subject: Printer", b" in flames", *HEADERS[3:]]
    assert content_hash(build(folded, BODY)) != content_hash(build(other, BODY))


def test_a_changed_non_trace_header_changes_the_hash() -> None:
    changed = [h.replace(b"Printer on fire", b"Printer fixed") for h in HEADERS]
    assert content_hash(build(changed, BODY)) != content_hash(PLAIN)


def test_a_received_line_in_the_body_is_content() -> None:
    """Only the header block is trace; the same text in the body is part of the message."""
    assert content_hash(build(HEADERS, [*BODY, b"Received: from a.example"])) != content_hash(PLAIN)


def test_different_bodies_hash_differently() -> None:
    assert content_hash(build(HEADERS, [b"Please help."])) != content_hash(
        build(HEADERS, [b"Please help!"])
    )


def test_header_only_message_is_hashed() -> None:
    a = b"From: alice@customer.example\nSubject: a\n"
    b = b"From: alice@customer.example\nSubject: b\n"
    assert content_hash(a) != content_hash(b)
    assert content_hash(b"Received: x\r\n" + a.replace(b"\n", b"\r\n")) == content_hash(a)


# Header names that are not trace fields; ``X-Received`` is one, ``X-Receive`` is not.
_names = st.sampled_from(
    [b"From", b"To", b"Cc", b"Subject", b"Message-ID", b"X-Mailer", b"X-Receive", b"Keywords"]
)
_values = st.text(alphabet=st.characters(min_codepoint=0x20, max_codepoint=0x7E), max_size=40).map(
    str.encode
)
_header = st.tuples(_names, _values).map(lambda nv: nv[0] + b": " + nv[1])
_trace_name = st.sampled_from(sorted(TRACE_FIELDS)).flatmap(
    lambda n: st.sampled_from([n, n.upper(), n.title()])
)
_trace = st.tuples(_trace_name, _values, st.lists(_values, max_size=2)).map(
    lambda t: [t[0] + b": " + t[1]] + [b"\t" + more for more in t[2]]
)
# Any bytes, 8-bit included; line breaks come from ``build``.
_body_lines = st.lists(
    st.binary(max_size=30).map(lambda b: b.replace(b"\r", b"").replace(b"\n", b"")),
    max_size=8,
)


@given(
    headers=st.lists(_header, min_size=1, max_size=8),
    body=_body_lines,
    traces=st.lists(st.tuples(st.integers(min_value=0), _trace), max_size=5),
    eol=st.sampled_from([b"\n", b"\r\n"]),
)
def test_trace_fields_anywhere_and_line_endings_never_change_the_hash(
    headers: list[bytes], body: list[bytes], traces: list[tuple[int, list[bytes]]], eol: bytes
) -> None:
    delivered = list(headers)
    for position, field in traces:
        at = position % (len(delivered) + 1)
        delivered[at:at] = field
    assert content_hash(build(delivered, body, eol)) == content_hash(build(headers, body))


@given(headers=st.lists(_header, min_size=1, max_size=5), a=_body_lines, b=_body_lines)
def test_different_bodies_never_collide(
    headers: list[bytes], a: list[bytes], b: list[bytes]
) -> None:
    assume(build(headers, a) != build(headers, b))
    assert content_hash(build(headers, a)) != content_hash(build(headers, b))


def test_dedupe_key_same_id_and_content_is_the_same_key() -> None:
    digest = content_hash(PLAIN)
    assert dedupe_key("m1@customer.example", digest) == dedupe_key("m1@customer.example", digest)
    assert re.fullmatch(r"[0-9a-f]{64}", dedupe_key("m1@customer.example", digest))


def test_dedupe_key_differs_for_other_content_or_other_message_id() -> None:
    digest = content_hash(PLAIN)
    key = dedupe_key("m1@customer.example", digest)
    assert dedupe_key("m1@customer.example", content_hash(PLAIN + b"more\n")) != key
    assert dedupe_key("m2@customer.example", digest) != key
    assert dedupe_key(None, digest) != key


def test_dedupe_key_without_message_id_depends_on_content_only() -> None:
    digest = content_hash(PLAIN)
    assert dedupe_key(None, digest) == dedupe_key("", digest)
    assert dedupe_key(None, digest) != dedupe_key(None, content_hash(PLAIN + b"x\n"))


@given(
    a=st.tuples(st.text(alphabet=st.characters(blacklist_characters="\0")), st.text()),
    b=st.tuples(st.text(alphabet=st.characters(blacklist_characters="\0")), st.text()),
)
def test_dedupe_key_never_confuses_id_and_content(a: tuple[str, str], b: tuple[str, str]) -> None:
    """The separator keeps ("ab", "c") and ("a", "bc") apart."""
    assume(a != b)
    assert dedupe_key(*a) != dedupe_key(*b)


def test_sniffed_message_id_is_the_header_value_without_brackets() -> None:
    assert sniff_message_id(PLAIN) == "m1@customer.example"


def test_sniffed_message_id_reads_folded_and_lower_case_headers() -> None:
    raw = b"From: a@customer.example\r\nmessage-id:\r\n <folded@customer.example>\r\n\r\nx\r\n"
    assert sniff_message_id(raw) == "folded@customer.example"


def test_sniffed_message_id_ignores_the_body_and_look_alike_headers() -> None:
    raw = build(
        [b"From: a@customer.example", b"Resent-Message-ID: <resent@relay.example>"],
        [b"Message-ID: <in-body@customer.example>"],
    )
    assert sniff_message_id(raw) is None


def test_trace_fields_do_not_change_the_dedupe_key() -> None:
    """End to end as ``record_receipt`` computes it: sniffed id plus content hash."""
    relayed = build([b"Received: from mx9.example", *HEADERS], BODY, b"\r\n")
    assert dedupe_key(sniff_message_id(relayed), content_hash(relayed)) == dedupe_key(
        sniff_message_id(PLAIN), content_hash(PLAIN)
    )
