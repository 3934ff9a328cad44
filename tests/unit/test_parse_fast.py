"""The single-part fast path of ``parse_message`` must give what the full parse gives.

The fast path parses the header section alone and takes a leaf body as it stands. These
tests compare it with the full compat32 parse on awkward messages and generated ones, and
check that the fast path really is taken where it should be (else they would prove nothing).
"""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from casemail.ingest.parse import _single_part, parse_message

HEAD = b"From: Alice <alice@customer.example>\r\nTo: support@example.com\r\nSubject: Hi\r\n"

SINGLE_PART = [
    HEAD + b"\r\nplain body\r\nsecond line\r\n",
    HEAD.replace(b"\r\n", b"\n") + b"\nLF only\n",
    HEAD + b"\r\n",
    HEAD + b"\r\n\r\n\r\nbody after empty lines\r\n",
    HEAD + b"Content-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n"
    b"\r\nGr\xc3\xbc\xc3\x9fe\r\n",
    HEAD + b"Content-Type: text/plain; charset=iso-8859-1\r\n"
    b"Content-Transfer-Encoding: quoted-printable\r\n\r\nR=E9clamation =\r\nsuite\r\n",
    HEAD + b"Content-Type: text/html; charset=utf-8\r\nContent-Transfer-Encoding: base64\r\n"
    b"\r\nPHA+SGVsbG88L3A+\r\n",
    HEAD + b"Content-Type: application/pdf; name=a.pdf\r\nContent-Transfer-Encoding: base64\r\n"
    b"Content-Disposition: attachment; filename=a.pdf\r\n\r\nJVBERi0=\r\n",
    HEAD + b"Content-Type: text/plain; charset=no-such-charset\r\n\r\n\xff\xfe bytes\r\n",
    HEAD + b"Subject2: folded\r\n  value\r\n\r\nbody\r\n",
]
FULL_PARSE_ONLY = [
    HEAD + b"no empty line, body runs on",
    HEAD + b"Content-Type: multipart/mixed; boundary=x\r\n\r\n--x\r\n\r\npart\r\n--x--\r\n",
    HEAD + b"Content-Type: message/rfc822\r\n\r\n" + HEAD + b"\r\ninner\r\n",
    b"From: a@b.example\rTo: c@d.example\r\n\r\nbare CR in the header section\r\n",
    b"not a header line\r\n" + HEAD + b"\r\nbody\r\n",
    b"From sender@example.com Mon Jan  1 00:00:00 2024\r\n" + HEAD + b"\r\nmbox line\r\n",
    b" continued first\r\n" + HEAD + b"\r\nbody\r\n",
    HEAD + b": no name\r\n\r\nbody\r\n",
    HEAD + b"Bad Name: space in the name\r\n\r\nbody\r\n",
]


@pytest.mark.parametrize("raw", SINGLE_PART)
def test_fast_path_is_taken_and_agrees(raw: bytes) -> None:
    assert _single_part(raw) is not None
    assert parse_message(raw) == parse_message(raw, fast=False)


@pytest.mark.parametrize("raw", FULL_PARSE_ONLY)
def test_unusual_messages_take_the_full_parse(raw: bytes) -> None:
    assert _single_part(raw) is None
    assert parse_message(raw) == parse_message(raw, fast=False)


header_lines = st.lists(
    st.sampled_from(
        [
            b"Content-Type: text/plain; charset=utf-8",
            b"Content-Type: text/html; charset=iso-8859-1",
            b"Content-Type: application/octet-stream",
            b"Content-Transfer-Encoding: base64",
            b"Content-Transfer-Encoding: quoted-printable",
            b"Content-Transfer-Encoding: 8bit",
            b"Content-Disposition: attachment; filename=x.bin",
            b"Content-Type: multipart/alternative; boundary=b",
            b"X-Folded: one\r\n two",
            b"Bad Name: x",
            b": empty name",
            b"NoColonAtAll",
            b"\tcontinuation",
            b"X-8bit: caf\xc3\xa9",
            b"X-Empty:",
        ]
    ),
    max_size=4,
)


@settings(max_examples=600)
@given(header_lines, st.binary(max_size=300), st.sampled_from([b"\r\n", b"\n"]))
def test_generated_messages_parse_the_same_either_way(
    extra: list[bytes], body: bytes, newline: bytes
) -> None:
    raw = newline.join([*HEAD.rstrip(b"\r\n").split(b"\r\n"), *extra]) + newline * 2 + body
    assert parse_message(raw) == parse_message(raw, fast=False)


@pytest.mark.parametrize(
    "content_type",
    [
        b"application/pdf; NAME=report.pdf",
        b"application/pdf; name = report.pdf",
        b"application/pdf;\r\n name*=utf-8''r%C3%A9sum%C3%A9.pdf",
    ],
)
def test_a_filename_in_the_content_type_is_found_however_written(content_type: bytes) -> None:
    raw = HEAD + b"Content-Type: " + content_type + b"\r\n\r\n%PDF\r\n"
    parsed = parse_message(raw)
    assert len(parsed.attachments) == 1
    assert parsed.attachments[0].filename in ("report.pdf", "résumé.pdf")
    assert parsed == parse_message(raw, fast=False)
