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

from casemail.ingest.types import Address

_MSG_ID = re.compile(r"<([^<>\s]+)>")
# RFC 5322 section 3.6.4: msg-id is id-left "@" id-right, neither part empty. Anything
# else ("<>", "<@>") is not an identifier and must never thread a message onto a case.
_VALID_ID = re.compile(r"^[^@\s]+@[^@\s]+$")
_WHITESPACE = re.compile(r"\s+")


def clean_text(text: str) -> str:
    """Make text storable: undo surrogate escapes of 8-bit bytes, drop NULs.

    Undeclared 8-bit header bytes (RFC 6532 allows UTF-8) are read as UTF-8 when they are
    valid, else as Windows-1252, the usual culprit in practice.
    """
    if any("\udc80" <= ch <= "\udcff" for ch in text):
        data = text.encode("utf-8", "surrogateescape")
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError:
            text = data.decode("cp1252", "replace")
    return text.replace("\x00", "")


def one_line(text: str) -> str:
    return _WHITESPACE.sub(" ", text).strip()


def message_ids(value: str | None) -> tuple[str, ...]:
    """The msg-ids in a header value (RFC 5322 section 3.6.4), without angle brackets."""
    if not value:
        return ()
    found = _MSG_ID.findall(value) or [value.strip()]
    return tuple(i for i in found if _VALID_ID.match(i))


class HeaderReader:
    def __init__(self, modern: Message, raw: bytes) -> None:
        self._modern = modern
        self._raw = raw
        self.defects: list[str] = []

    @cached_property
    def _legacy(self) -> Message:
        return email.message_from_bytes(self._raw, policy=policy.compat32)

    def text(self, name: str) -> str | None:
        try:
            value = self._modern.get(name)
            return None if value is None else clean_text(str(value))
        except Exception as exc:  # noqa: BLE001 - any header may raise; fall back below
            self.defects.append(f"{name}: {type(exc).__name__} in modern parser")
        return self._legacy_text(name)

    def _legacy_text(self, name: str) -> str | None:
        value = self._legacy.get(name)
        if value is None:
            return None
        try:
            return clean_text(str(make_header(decode_header(str(value)))))
        except Exception:  # noqa: BLE001 - undecodable encoded-words: keep them as sent
            return clean_text(str(value))

    def addresses(self, name: str) -> tuple[Address, ...]:
        try:
            header = self._modern.get(name)
            if header is None:
                return ()
            if not hasattr(header, "addresses"):  # a compat32 fallback message
                raise TypeError("not an address header object")
            found = tuple(
                Address(email=clean_text(a.addr_spec), name=clean_text(a.display_name) or None)
                for a in header.addresses
                if a.username and a.domain
            )
            if found:
                return found
        except Exception as exc:  # noqa: BLE001
            self.defects.append(f"{name}: {type(exc).__name__} in modern parser")
        legacy = self._legacy_text(name)
        if not legacy:
            return ()
        return tuple(
            Address(email=addr, name=display or None)
            for display, addr in getaddresses([legacy])
            if "@" in addr
        )

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
