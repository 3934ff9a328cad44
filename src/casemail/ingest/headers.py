"""Reading header fields that real mail gets wrong.

``policy.default`` parses headers lazily, so any access can raise (an ``IndexError`` on some
Exchange Message-IDs, errors on bad parameters). Every read goes through ``HeaderReader``,
which falls back to the ``compat32`` parse of the same bytes and never raises.
"""

from __future__ import annotations

import email
import re
from datetime import UTC, datetime
from email import policy
from email.header import decode_header, make_header
from email.message import Message
from email.utils import getaddresses, parsedate_to_datetime
from functools import cached_property
from typing import Any

from casemail.ingest.types import Address

_MSG_ID = re.compile(r"<([^<>\s]+)>")
# RFC 5322 section 3.6.4: msg-id is id-left "@" id-right, neither part empty. Anything
# else ("<>", "<@>") is not an identifier and must never thread a message onto a case.
_VALID_ID = re.compile(r"^[^@\s]+@[^@\s]+$")
_WHITESPACE = re.compile(r"\s+")
# The surrogates ``surrogateescape`` uses for undecodable bytes 0x80-0xFF.
_ESCAPED_BYTE = re.compile("[\udc80-\udcff]")
# Any surrogate left after decoding (UTF-7 can encode lone ones): no database stores them.
_SURROGATE = re.compile("[\ud800-\udfff]")
# Longer values skip policy.default's header parser, whose cost grows much faster than the
# value (CPython gh-136063: a 1 MB Subject took 46 s and 317 MB); the legacy decoder is
# linear. Real fields are far shorter (RFC 5322 section 2.1.1: lines of at most 998).
MODERN_PARSE_LIMIT = 8192


def clean_text(text: str) -> str:
    """Make text storable: undo surrogate escapes of 8-bit bytes, drop NULs.

    Undeclared 8-bit header bytes (RFC 6532 allows UTF-8) are read as UTF-8 when they are
    valid, else as Windows-1252, the usual culprit in practice.
    """
    if not text.isascii() and _ESCAPED_BYTE.search(text):
        data = text.encode("utf-8", "surrogateescape")
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError:
            text = data.decode("cp1252", "replace")
    if not text.isascii() and _SURROGATE.search(text):
        text = _SURROGATE.sub("\ufffd", text)
    return text.replace("\x00", "")


def one_line(text: str) -> str:
    return _WHITESPACE.sub(" ", text).strip()


def message_ids(value: str | None) -> tuple[str, ...]:
    """The msg-ids in a header value (RFC 5322 section 3.6.4), without angle brackets."""
    if not value:
        return ()
    found = _MSG_ID.findall(value) or [value.strip()]
    return tuple(i for i in found if _VALID_ID.match(i))


# Header values the fast path may read without the modern parser: printable ASCII with no
# encoded-word ("=?", RFC 2047) in it. Anything else goes through ``policy.default``.
_PLAIN = re.compile(r"^[\x20-\x7e\t\r\n]*$")
_LINE_BREAK = re.compile(r"\r\n|\n|\r")
# A list of mailboxes simple enough that splitting it by hand gives what the modern parser
# gives: ``addr-spec`` or ``[phrase] <addr-spec>``, the phrase plain words or a plain
# quoted string, no comments, groups or quoted local parts (RFC 5322 section 3.4).
_ATOM = r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+"
_DOT_ATOM = _ATOM + r"(?:\." + _ATOM + r")*"
_ADDR_SPEC = _DOT_ATOM + "@" + _DOT_ATOM
_PHRASE = r"(?:" + _ATOM + r"(?:[ \t]+" + _ATOM + r")*" + r'|"[^"\\,]*")'
_MAILBOX = (
    r"[ \t]*(?:(?P<name>" + _PHRASE + r")?[ \t]*<(?P<angle>" + _ADDR_SPEC + r")>"
    r"|(?P<bare>" + _ADDR_SPEC + r"))[ \t]*"
)
_MAILBOX_RE = re.compile(_MAILBOX)
_SIMPLE_LIST = re.compile(_MAILBOX + r"(?:," + _MAILBOX.replace("?P<", "?P<x") + r")*")


# Header fields the classification rules read (RFC 3834 section 5, RFC 2369, RFC 2919, the
# de-facto Precedence and vendor auto-reply fields, and our own loop marker).
RULE_HEADERS = frozenset(
    {
        "auto-submitted",
        "x-autoreply",
        "x-autorespond",
        "x-auto-response-suppress",
        "precedence",
        "list-id",
        "list-unsubscribe",
        "list-post",
        "return-path",
        "x-failed-recipients",
        "delivered-to",
        "x-original-to",
        "feedback-id",
    }
)


def _unfold(value: str) -> str:
    # RFC 5322 section 2.2.3: unfolding removes the CRLF before folding whitespace.
    return "".join(_LINE_BREAK.split(value))


def _is_plain(value: str) -> bool:
    return "=?" not in value and _PLAIN.match(value) is not None


class HeaderReader:
    """Reads header fields from a parsed message of either policy, never raising.

    Parsing is done with ``compat32`` (about five times faster than ``policy.default`` on
    ordinary mail) and the raw values are read here: plain ASCII values directly, anything
    with encoded-words, 8-bit bytes or unusual syntax through ``policy.default``'s header
    parser, and where that raises, through the legacy decoder.
    """

    def __init__(self, message: Message, raw: bytes) -> None:
        self._raw_values: dict[str, str] = {}
        self._auth_results: list[str] = []
        for name, value in message.raw_items():
            key = name.lower()
            text = value if isinstance(value, str) else ""
            self._raw_values.setdefault(key, text)
            if key == "authentication-results":
                self._auth_results.append(text)
        self._raw = raw
        self.defects: list[str] = []

    def rule_fields(self) -> dict[str, str]:
        """The fields the classification rules and structured fields read, decoded."""
        wanted = [n for n in self._raw_values if n in RULE_HEADERS or n.startswith("x-casemail-")]
        return {name: one_line(self.text(name) or "") for name in wanted}

    def authentication_results(self) -> tuple[str, ...]:
        """Every Authentication-Results field (RFC 8601 section 2.2), unfolded; newest first."""
        return tuple(one_line(clean_text(_unfold(v))) for v in self._auth_results[:20])

    @cached_property
    def _legacy(self) -> Message:
        return email.message_from_bytes(self._raw, policy=policy.compat32)

    def text(self, name: str) -> str | None:
        value = self._raw_values.get(name.lower())
        if value is None:
            return None
        if _is_plain(value):
            return clean_text(_unfold(value))
        if len(value) > MODERN_PARSE_LIMIT:
            return self._legacy_text(name)
        modern = self._modern(name, value)
        return clean_text(str(modern)) if modern is not None else self._legacy_text(name)

    def _modern(self, name: str, value: str) -> Any:
        try:
            header = policy.default.header_fetch_parse(name, value)
            str(header)  # some values raise only when rendered
            return header
        except Exception as exc:  # noqa: BLE001 - any header may raise; the caller falls back
            self.defects.append(f"{name}: {type(exc).__name__} in modern parser")
            return None

    def _legacy_text(self, name: str) -> str | None:
        value = self._legacy.get(name)
        if value is None:
            return None
        try:
            return clean_text(str(make_header(decode_header(str(value)))))
        except Exception:  # noqa: BLE001 - undecodable encoded-words: keep them as sent
            return clean_text(str(value))

    def addresses(self, name: str) -> tuple[Address, ...]:
        value = self._raw_values.get(name.lower())
        if value is None:
            return ()
        unfolded = _unfold(value)
        if _is_plain(value) and _SIMPLE_LIST.fullmatch(unfolded):
            return tuple(_simple_mailboxes(unfolded))
        found = self._modern_addresses(name, value) if len(value) <= MODERN_PARSE_LIMIT else ()
        if found:
            return found
        legacy = self._legacy_text(name)
        if not legacy:
            return ()
        return tuple(
            Address(email=addr, name=display or None)
            for display, addr in getaddresses([legacy])
            if "@" in addr
        )

    def _modern_addresses(self, name: str, value: str) -> tuple[Address, ...]:
        header = self._modern(name, value)
        if header is None:
            return ()
        try:
            return tuple(
                Address(email=clean_text(a.addr_spec), name=clean_text(a.display_name) or None)
                for a in header.addresses
                if a.username and a.domain
            )
        except Exception as exc:  # noqa: BLE001
            self.defects.append(f"{name}: {type(exc).__name__} in modern parser")
            return ()

    def date(self) -> datetime | None:
        text = self.text("Date")
        if not text:
            return None
        try:
            value = parsedate_to_datetime(text)
            # RFC 5322 section 3.3: "-0000" means no zone known; treat as UTC.
            return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
        except (TypeError, ValueError, IndexError, OverflowError):
            # OverflowError: a year too large for an int, or a date near 9999-12-31 that
            # leaves datetime's range when moved to UTC. It used to escape and fail the
            # whole message (quarantined "processing-failed"); see tests/unit/test_headers.py.
            self.defects.append("Date: unparseable")
            return None


def _simple_mailboxes(value: str) -> list[Address]:
    found = []
    for match in _MAILBOX_RE.finditer(value):
        phrase = match.group("name") or ""
        # A quoted string is taken as it stands; words of a phrase are joined by one space,
        # as the modern parser does.
        name = phrase[1:-1] if phrase.startswith('"') else " ".join(phrase.split())
        address = match.group("angle") or match.group("bare")
        found.append(Address(email=address, name=name or None))
    return found
