"""Which message a bounce returns: the Message-ID that names our outbound message.

RFC 6522 section 3 puts the returned message (``message/rfc822``) or only its header
section (``text/rfc822-headers``, section 4) after the delivery-status part; RFC 6533 adds
the ``message/global*`` forms. Some MTAs also name the original in an
``X-Original-Message-ID`` or ``Original-Message-ID`` field, and plain-text bounces quote
the returned message inline, where only a ``Message-ID:`` line in the text is left.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from email import policy
from email.message import Message
from email.parser import HeaderParser

from casemail.ingest import dsn_heuristic as plain
from casemail.ingest.headers import clean_text, message_ids

RETURNED_TYPES = frozenset({"message/rfc822", "message/global"})
HEADER_TYPES = frozenset({"text/rfc822-headers", "message/global-headers"})
ID_FIELDS = ("Message-ID", "X-Original-Message-ID", "Original-Message-ID")
# A Message-ID field quoted in the text (RFC 5322 section 3.6.4), possibly folded.
_QUOTED_ID = re.compile(r"(?im)^[ \t>]*message-id[ \t]*:[ \t]*(?:\r?\n[ \t]+)?(<[^<>\s]{1,250}>)")


def returned_ids(report: Message, blocks: Sequence[Mapping[str, str]]) -> tuple[str, ...]:
    """The ids of the first returned message or header section, then any original-id
    fields among the delivery-status ``blocks``; without angle brackets, in order, once."""
    found: list[str] = []
    for count, part in enumerate(plain.parts(report)):
        if count >= plain.MAX_PARTS or found:
            break
        if part.get_content_type() in RETURNED_TYPES | HEADER_TYPES:
            headers = _returned_headers(part)
            found += [i for name in ID_FIELDS for i in _ids(plain.header(headers, name))]
    for block in blocks:
        for name in ID_FIELDS[1:]:
            found += _ids(clean_text(block.get(name.lower(), "")))
    return tuple(dict.fromkeys(found))


def quoted_ids(text: str) -> tuple[str, ...]:
    """The Message-ID of a returned message quoted as text (the first one quoted)."""
    found = _QUOTED_ID.search(text)
    return _ids(found.group(1)) if found else ()


def _returned_headers(part: Message) -> Message:
    """The stdlib parses every message/* part into a message: take its header section.
    text/rfc822-headers is text: parse its fields."""
    payload = part.get_payload()
    if isinstance(payload, list):
        inner = payload[0] if payload else None
        return inner if isinstance(inner, Message) else Message()
    return HeaderParser(policy=policy.compat32).parsestr(plain.part_text(part))


def _ids(value: str) -> tuple[str, ...]:
    """msg-ids (RFC 5322 section 3.6.4); a bracket left over is an id cut off: none."""
    return tuple(i for i in message_ids(value) if "<" not in i and ">" not in i)
