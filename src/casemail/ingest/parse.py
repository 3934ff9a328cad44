"""Stage 1: raw bytes to a ``ParsedMessage``. Never raises on bad mail; records defects."""

from __future__ import annotations

import codecs
import email
import email.parser
import functools
import re
from email import policy
from email.header import decode_header, make_header
from email.message import Message

from casemail.html.sanitize import safe_html
from casemail.ingest.hashing import HEADER_END
from casemail.ingest.headers import HeaderReader, clean_text, message_ids, one_line
from casemail.ingest.types import ParsedAttachment, ParsedMessage

# Deeper MIME trees are kept only in the raw message: real mail nests a handful of levels,
# and an attacker's 1,000-deep tree must not cost unbounded time.
MAX_MIME_DEPTH = 32
# Messages declaring more parts than this are not walked at all (see _declared_parts).
MAX_DECLARED_PARTS = 256
TOO_MANY_PARTS = (
    f"more than {MAX_DECLARED_PARTS} MIME parts declared; the body is kept in the raw message only"
)
MAX_DEFECTS = 50


class _Bodies:
    def __init__(self) -> None:
        self.text: str | None = None
        self.html: str | None = None
        self.attachments: list[ParsedAttachment] = []
        self.defects: list[str] = []


def _charset(part: Message) -> str:
    return _codec_name(part.get_content_charset() or "us-ascii")


@functools.lru_cache(maxsize=256)
def _codec_name(charset: str) -> str:
    try:
        return codecs.lookup(charset).name
    except LookupError:
        return "utf-8"


def _decode_text(part: Message, bodies: _Bodies) -> str:
    """The part's text: never raises, never returns what a database refuses. The sender
    names the codec: a NUL in the name (ValueError), "base64" (no text codec: LookupError)
    or "undefined" (UnicodeError) used to fail the whole MIME walk and lose every body and
    attachment; "punycode" (and "idna", which uses it) decodes in quadratic time; "utf-7"
    and the escape codecs give unpaired surrogates, which PostgreSQL, SQLite and nh3 refuse.
    """
    payload = part.get_payload(decode=True)
    data = payload if isinstance(payload, bytes) else b""
    charset, text = "its declared charset", None
    try:
        charset = _charset(part)
        if charset not in ("idna", "punycode"):
            text = data.decode(charset)
    except (UnicodeError, LookupError, ValueError):
        text = None
    if text is None:
        bodies.defects.append(f"body not valid {charset}; undecodable bytes replaced")
        # Mislabelled 8-bit text is most often UTF-8 or Windows-1252.
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError:
            text = data.decode("cp1252", "replace")
    elif not text.isascii():
        try:
            text.encode("utf-8")
        except UnicodeEncodeError:  # a UTF-16 round trip pairs what pairs, U+FFFD the rest
            bodies.defects.append(f"body in {charset} has unpaired surrogates; replaced")
            text = text.encode("utf-16-le", "surrogatepass").decode("utf-16-le", "replace")
    return clean_text(text)


def _filename(part: Message) -> str | None:
    # get_filename reads Content-Disposition's filename, else Content-Type's name: a part
    # with no Content-Disposition and no "name" anywhere in its Content-Type (parameter
    # names are case-insensitive, RFC 2045 section 5.1) has none; no parameter parsing.
    content_type = str(part.get("content-type", "")).lower()
    if "content-disposition" not in part and "name" not in content_type:
        return None
    try:
        name = part.get_filename()
        if name and "=?" in name:
            # Outlook and others put RFC 2047 encoded-words inside the quoted filename,
            # which RFC 2047 section 5 forbids but every mail client decodes.
            name = str(make_header(decode_header(name)))
    except Exception:  # noqa: BLE001 - broken RFC 2231 parameters or encoded-words
        return None
    return clean_text(name) if name else None


def _disposition(part: Message) -> str | None:
    if "content-disposition" not in part:
        return None
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


def describe(defect: object) -> str:
    """A parser defect in words: the email package's defect classes carry no message."""
    return str(defect) or type(defect).__name__


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
    # After _leaf: decoding a payload (bad base64) adds its defect to the part then.
    if depth and part.defects and len(bodies.defects) < MAX_DEFECTS:
        bodies.defects += [describe(d) for d in part.defects[:5]]


# A field line as the feed parser recognises it: printable ASCII except ":" for the name.
_FIELD_NAME = re.compile(r"[\041-\071\073-\176]+:")


def _plain_header_section(head: str) -> Message | None:
    """The header section split into fields as the feed parser splits it, or None where
    the feed parser would record a defect or a Unix From_ line (the full parse handles
    those). Each field is stored raw, as compat32's ``header_source_parse`` stores it."""
    message = Message()
    field: list[str] = []
    for line in head.split("\n")[:-1]:
        line += "\n"
        if line[0] in " \t":
            if not field:
                return None  # the first line is a continuation
            field.append(line)
            continue
        if field:
            message.set_raw(*_field(field))
        if _FIELD_NAME.match(line) is None:
            return None  # not a field (or a From_ line): no header/body separator
        field = [line]
    if field:
        message.set_raw(*_field(field))
    return message


def _field(lines: list[str]) -> tuple[str, str]:
    name, value = lines[0].split(":", 1)
    value = value.lstrip(" \t") + "".join(lines[1:])
    return name, value.rstrip("\r\n")


def _single_part(raw: bytes) -> Message | None:
    """A message whose body is one leaf, parsed without feeding the body through the parser.

    The feed parser keeps a leaf body exactly as it stands (the bytes after the empty line,
    read as ASCII with surrogate escapes), so parsing the header section alone and setting
    that body gives the same message, at a fraction of the cost for long bodies. Anything
    unusual (no empty line, a bare CR, header defects, MIME multipart or message/*) returns
    None and takes the full parse.
    """
    found = HEADER_END.search(raw)
    if found is None:
        return None
    head = raw[: found.start() + (2 if raw[found.start()] == 0x0D else 1)]
    if b"\r" in head.replace(b"\r\n", b""):
        return None
    message = _plain_header_section(head.decode("ascii", "surrogateescape"))
    if message is None or message.get_content_maintype() in ("multipart", "message"):
        return None
    message.set_payload(raw[found.end() :].decode("ascii", "surrogateescape"))
    return message


def _load(raw: bytes, *, fast: bool = True) -> tuple[Message, list[str]]:
    # compat32 builds the same MIME tree as policy.default about five times faster, because
    # it leaves header values unparsed; HeaderReader parses the few fields we read.
    leaf = _single_part(raw) if fast else None
    if leaf is not None:
        return leaf, []
    if _declared_parts(raw) > MAX_DECLARED_PARTS:
        return _headers_only(raw), [TOO_MANY_PARTS]
    try:
        return email.message_from_bytes(raw, policy=policy.compat32), []
    except RecursionError:
        return _headers_only(raw), [TOO_MANY_PARTS]
    except Exception as exc:  # noqa: BLE001 - try the other policy before giving up
        modern = email.message_from_bytes(raw, policy=policy.default)
        return modern, [f"compat32 parser failed ({type(exc).__name__}); policy.default used"]


def _declared_parts(raw: bytes) -> int:
    """How many multipart boundaries and embedded messages the message declares: a cheap
    bound on its MIME tree, read before the parser, which recurses once per level (a
    1,000-deep tree raised RecursionError after 40 s)."""
    lowered = raw.lower()
    return lowered.count(b"boundary=") + lowered.count(b"message/rfc822")


def _headers_only(raw: bytes) -> Message:
    """The header section alone; the body stays in the raw message, unread."""
    message = email.parser.BytesHeaderParser(policy=policy.compat32).parsebytes(raw)
    message.set_payload("")
    message.set_type("text/plain")
    return message


def _read_bodies(message: Message, raw: bytes) -> _Bodies:
    """Walk the parse; when it raises on some part, walk the policy.default parse instead."""
    bodies = _Bodies()
    try:
        _walk(message, bodies, 0)
        return bodies
    except Exception as exc:  # noqa: BLE001 - a body we cannot walk is still a message
        first_error = type(exc).__name__
    bodies = _Bodies()
    bodies.defects.append(f"walking the MIME tree failed ({first_error}); policy.default used")
    try:
        _walk(email.message_from_bytes(raw, policy=policy.default), bodies, 0)
    except Exception as exc:  # noqa: BLE001
        bodies.defects.append(f"MIME structure unreadable ({type(exc).__name__})")
    return bodies


def parse_message(raw: bytes, *, fast: bool = True) -> ParsedMessage:
    """``fast=False`` always runs the full parse (the reference the fast path is tested against)."""
    message, defects = _load(raw, fast=fast)
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
        html_body=safe_html(bodies.html) if bodies.html is not None else None,
        attachments=tuple(bodies.attachments),
        defects=tuple(
            defects
            + headers.defects
            + bodies.defects[:MAX_DEFECTS]
            + [describe(d) for d in message.defects][:20]
        ),
        content_type=_top_content_type(message),
        header_fields=headers.rule_fields(),
        auth_results=headers.authentication_results(),
    )


def _top_content_type(message: Message) -> str:
    try:
        return clean_text(message.get_content_type())
    except Exception:  # noqa: BLE001 - a broken Content-Type reads as the RFC 2045 default
        return "text/plain"
