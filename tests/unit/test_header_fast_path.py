"""The header fast path must read exactly what ``policy.default`` reads.

``HeaderReader`` reads plain ASCII values and simple mailbox lists by hand, for speed, and
hands everything else to the modern parser. These properties compare the two on generated
values, so a fast path that drifts from the modern parser's answer fails here.
"""

from __future__ import annotations

import email
from email import policy

from hypothesis import given, settings
from hypothesis import strategies as st

from casemail.ingest.headers import HeaderReader, clean_text
from casemail.ingest.types import Address

ATOM_CHARS = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789!#$%&'*+/=?^_`{|}~-"
atoms = st.text(alphabet=ATOM_CHARS, min_size=1, max_size=8)
dot_atoms = st.lists(atoms, min_size=1, max_size=3).map(".".join)
addr_specs = st.builds(lambda local, domain: f"{local}@{domain}", dot_atoms, dot_atoms)
phrases = st.one_of(
    st.lists(atoms, min_size=1, max_size=4).map(" ".join),
    st.text(alphabet=ATOM_CHARS + " .;:<>@()[]", max_size=12).map(lambda t: f'"{t}"'),
)
mailboxes = st.one_of(
    addr_specs,
    st.builds(lambda p, a: f"{p} <{a}>", phrases, addr_specs),
    st.builds(lambda a: f"<{a}>", addr_specs),
)
mailbox_lists = st.lists(mailboxes, min_size=1, max_size=4).map(", ".join)
# Printable ASCII with the odd fold: the values plain enough to take the fast path.
plain_values = st.lists(
    st.text(alphabet=st.characters(min_codepoint=0x20, max_codepoint=0x7E), max_size=30),
    min_size=1,
    max_size=3,
).map("\r\n ".join)


def reader(name: str, value: str) -> HeaderReader:
    raw = f"{name}: {value}\r\n\r\nbody\r\n".encode()
    return HeaderReader(email.message_from_bytes(raw, policy=policy.compat32), raw)


def modern_addresses(name: str, value: str) -> tuple[Address, ...]:
    header = policy.default.header_fetch_parse(name, value)
    return tuple(
        Address(email=clean_text(a.addr_spec), name=clean_text(a.display_name) or None)
        for a in header.addresses
        if a.username and a.domain
    )


@settings(max_examples=400)
@given(mailbox_lists)
def test_mailbox_lists_read_as_the_modern_parser_reads_them(value: str) -> None:
    assert reader("To", value).addresses("To") == modern_addresses("To", value)


@settings(max_examples=400)
@given(plain_values)
def test_plain_text_reads_as_the_modern_parser_reads_it(value: str) -> None:
    value = value.strip()
    read = reader("Subject", value).text("Subject")
    modern = clean_text(str(policy.default.header_fetch_parse("Subject", value)))
    assert read == modern
