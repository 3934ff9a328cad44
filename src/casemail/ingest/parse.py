"""Stage 1: raw bytes to a ``ParsedMessage``. Never raises on bad mail; records defects."""

from __future__ import annotations

import codecs
import email
from email import policy
from email.message import Message

from casemail.ingest.headers import HeaderReader, clean_text, message_ids, one_line
from casemail.ingest.types import ParsedAttachment, ParsedMessage

# Deeper MIME trees are kept only in the raw message: real mail nests a handful of levels,
# and an attacker's 1,000-deep tree must not cost unbounded time.
MAX_MIME_DEPTH = 32


class _Bodies:
    def __init__(self) -> None:
        self.text: str | None = None
        self.html: str | None = None
        self.attachments: list[ParsedAttachment] = []
        self.defects: list[str] = []


def _charset(part: Message) -> str:
    name = part.get_content_charset() or "us-ascii"
    try:
        return codecs.lookup(name).name
    except LookupError:
        return "utf-8"


def _decode_text(part: Message, bodies: _Bodies) -> str:
    payload = part.get_payload(decode=True)
    data = payload if isinstance(payload, bytes) else b""
    charset = _charset(part)
    try:
        return clean_text(data.decode(charset))
    except UnicodeDecodeError:
        bodies.defects.append(f"body not valid {charset}; undecodable bytes replaced")
        # Mislabelled 8-bit text is most often UTF-8 or Windows-1252.
        try:
            return clean_text(data.decode("utf-8"))
        except UnicodeDecodeError:
            return clean_text(data.decode("cp1252", "replace"))


def _filename(part: Message) -> str | None:
    try:
        name = part.get_filename()
    except Exception:  # noqa: BLE001 - broken RFC 2231 parameters
        return None
    return clean_text(name) if name else None


def _disposition(part: Message) -> str | None:
    try:
        return part.get_content_disposition()
    except Exception:  # noqa: BLE001
        return None


def _attachment(part: Message, data: bytes) -> ParsedAttachment:
    # clean_text as for the filename: a NUL in these headers failed the message on
    # PostgreSQL, whose text columns cannot hold one (tests/integration/test_ingest.py).
    content_id = message_ids(clean_text(str(part.get("Content-ID") or "")))
    return ParsedAttachment(
        filename=_filename(part),
        content_type=clean_text(part.get_content_type()),
        content_id=content_id[0] if content_id else None,
        inline=_disposition(part) == "inline",
        data=data,
    )


def _leaf(part: Message, bodies: _Bodies) -> None:
    content_type = part.get_content_type()
    is_body = (
        content_type in ("text/plain", "text/html")
        and _disposition(part) != "attachment"
        and not _filename(part)
    )
    if is_body and content_type == "text/plain" and bodies.text is None:
        bodies.text = _decode_text(part, bodies)
    elif is_body and content_type == "text/html" and bodies.html is None:
        bodies.html = _decode_text(part, bodies)
    else:
        payload = part.get_payload(decode=True)
        bodies.attachments.append(_attachment(part, payload if isinstance(payload, bytes) else b""))


def _walk(part: Message, bodies: _Bodies, depth: int) -> None:
    if depth > MAX_MIME_DEPTH:
        bodies.defects.append(f"MIME nesting deeper than {MAX_MIME_DEPTH}; rest kept in raw only")
        return
    if part.get_content_type() == "message/rfc822":
        # A forwarded message stays whole, as an .eml attachment, not merged into our body.
        inner = part.get_payload()
        first = inner[0] if isinstance(inner, list) and inner else None
        data = first.as_bytes() if isinstance(first, Message) else b""
        bodies.attachments.append(_attachment(part, data))
        return
    if part.is_multipart():
        children = part.get_payload()
        for child in children if isinstance(children, list) else []:
            if isinstance(child, Message):
                _walk(child, bodies, depth + 1)
        return
    _leaf(part, bodies)


def _load(raw: bytes) -> tuple[Message, list[str]]:
    try:
        return email.message_from_bytes(raw, policy=policy.default), []
    except Exception as exc:  # noqa: BLE001 - fall back to the forgiving legacy parser
        legacy = email.message_from_bytes(raw, policy=policy.compat32)
        return legacy, [f"modern parser failed ({type(exc).__name__}); compat32 used"]


def _read_bodies(message: Message, raw: bytes) -> _Bodies:
    """Walk the modern parse; when it raises on some part, walk the compat32 parse instead."""
    bodies = _Bodies()
    try:
        _walk(message, bodies, 0)
        return bodies
    except Exception as exc:  # noqa: BLE001 - a body we cannot walk is still a message
        first_error = type(exc).__name__
    bodies = _Bodies()
    bodies.defects.append(f"modern parser failed on the body ({first_error}); compat32 used")
    try:
        _walk(email.message_from_bytes(raw, policy=policy.compat32), bodies, 0)
    except Exception as exc:  # noqa: BLE001
        bodies.defects.append(f"MIME structure unreadable ({type(exc).__name__})")
    return bodies


def parse_message(raw: bytes) -> ParsedMessage:
    message, defects = _load(raw)
    headers = HeaderReader(message, raw)
    bodies = _read_bodies(message, raw)
    senders = headers.addresses("From") or headers.addresses("Sender")
    reply_ids = message_ids(headers.text("In-Reply-To"))
    own_ids = message_ids(headers.text("Message-ID"))
    return ParsedMessage(
        message_id=own_ids[0] if own_ids else None,
        in_reply_to=reply_ids[0] if reply_ids else None,
        references=message_ids(headers.text("References")),
        subject=one_line(headers.text("Subject") or ""),
        sender=senders[0] if senders else None,
        to=headers.addresses("To"),
        cc=headers.addresses("Cc"),
        date=headers.date(),
        text_body=bodies.text,
        html_body=bodies.html,
        attachments=tuple(bodies.attachments),
        defects=tuple(
            defects + headers.defects + bodies.defects + [str(d) for d in message.defects][:20]
        ),
    )
