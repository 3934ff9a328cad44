"""Content hashes for dedupe.

The same message may reach us twice with different trace fields (a Received line per hop,
RFC 5321 section 4.4), and with CRLF from the network but LF from a file. Neither makes it
a different message, so both are left out of the content hash.
"""

from __future__ import annotations

import hashlib
import re

TRACE_FIELDS = frozenset(
    {
        b"received",
        b"return-path",
        b"delivered-to",
        b"x-original-to",
        b"x-received",
        b"authentication-results",
        b"arc-seal",
        b"arc-message-signature",
        b"arc-authentication-results",
    }
)
# The first empty line: the end of the header section (RFC 5322 section 2.1).
HEADER_END = re.compile(rb"\r?\n\r?\n")


def _split_fields(header_block: bytes) -> list[bytes]:
    """Header fields with their folded continuation lines (RFC 5322 section 2.2.3).

    Lines are collected per field and joined once: growing a bytes object per folded line
    is quadratic, and a 24 MB header folded into 300,000 lines took minutes."""
    fields: list[list[bytes]] = []
    for line in header_block.split(b"\n"):
        if line[:1] in (b" ", b"\t") and fields:
            fields[-1].append(line)
        else:
            fields.append([line])
    return [b"\n".join(lines) for lines in fields]


def content_hash(raw: bytes) -> str:
    return fingerprint(raw)[1]


def fingerprint(raw: bytes) -> tuple[bytes | None, str]:
    """The value of the first Message-ID field (unfolded, undecoded) and the content hash,
    from one pass over the header section: the receipt needs both for its dedupe key."""
    normalised = raw.replace(b"\r\n", b"\n")
    match = HEADER_END.search(normalised)
    header_block, body = (
        (normalised[: match.start()], normalised[match.end() :]) if match else (normalised, b"")
    )
    kept: list[bytes] = []
    message_id: bytes | None = None
    for field in _split_fields(header_block):
        name, _, value = field.partition(b":")
        name = name.strip().lower()
        if name in TRACE_FIELDS:
            continue
        kept.append(field)
        if message_id is None and name == b"message-id":
            message_id = value.replace(b"\n", b"")
    digest = hashlib.sha256()
    digest.update(b"\n".join(kept))
    digest.update(b"\n\n")
    digest.update(body)
    return message_id, digest.hexdigest()


def dedupe_key(message_id: str | None, content: str) -> str:
    """Same Message-ID and same content on the same channel is the same message."""
    # surrogatepass: a header decoded with surrogateescape must still give a key, not raise.
    key = f"{message_id or ''}\0{content}".encode("utf-8", "surrogatepass")
    return hashlib.sha256(key).hexdigest()
