"""Bounces that are not RFC 3464 reports: recognised by their look, read from their text.

Many MTAs still return mail as plain text (qmail's "failure notice", Exim's "Mail delivery
failed" with ``X-Failed-Recipients``, Postfix and Sendmail without DSN support), and a
truncated report leaves only its human-readable part. Nothing here is standardised, so
every rule is a heuristic with a bound: a capped walk of the MIME tree, the first 64 KB of
a text part, and regular expressions that cannot backtrack for long. The text before the
returned copy of the message is read for the failed addresses; the copy itself only for
its Message-ID (our own addresses are in it and must not read as failed recipients).
"""

from __future__ import annotations

import html
import re
from collections.abc import Iterator
from email.message import Message
from email.utils import getaddresses

from casemail.ingest.headers import clean_text

MAX_DEPTH = 8  # real bounces nest three or four levels
MAX_PARTS = 64  # parts visited per message
MAX_TEXT = 64 * 1024  # bytes of a text part read
MAX_ADDRESSES = 20

DAEMON_NAMES = frozenset({"mailer-daemon", "postmaster"})
# Subjects of the common plain-text bounces (Postfix, Exim, qmail, Sendmail, Exchange, Gmail).
BOUNCE_SUBJECT = re.compile(
    r"undeliverable|undelivered mail|mail delivery failed|delivery status notification "
    r"\(failure\)|failure notice|returned mail|delivery failure|delivery has failed"
    r"|mail delivery failure|could not be delivered|unzustellbar|non remis",
    re.IGNORECASE,
)
# Bounded repetition: linear time on a 64 KB run of address characters with no "@".
ADDRESS = re.compile(
    r"[A-Za-z0-9.!#$%&'*+/=?^_`{|}~-]{1,64}@[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
    r"(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?){1,8}"
)
# RFC 3463 section 2: class.subject.detail, subject and detail of one to three digits.
ENHANCED = re.compile(r"\b([245])\.(\d{1,3})\.(\d{1,3})\b")
# An SMTP reply (RFC 5321 section 4.2) quoted in a bounce: at a line start, or after
# "said:" (Postfix, qmail) or "reason:" (Sendmail).
_REPLY = re.compile(r"(?im)(?:^[ \t]*(?:<<<[ \t]*)?|said:[ \t]*|reason:[ \t]*)([245]\d\d)[ -]")
_REMOTE_HOST = re.compile(r"\bhost[ \t]+([A-Za-z0-9.-]{1,253})[ \t]*\[")
# Where the returned copy of the message starts: a marker line, or its first header field.
_COPY_START = re.compile(
    r"(?im)^[ \t-]*(?:.{0,40}copy of the (?:original )?message|original message (?:follows"
    r"|headers)|undelivered message headers|-+ ?original message ?-+)"
    r"|^(?:received|return-path|message-id|dkim-signature|mime-version|from|subject|date)"
    r"[ \t]*:"
)
_TAG = re.compile(r"<[^<>]{0,2000}>")


def is_daemon(address: str | None) -> bool:
    """The null reverse-path ("<>", RFC 5321 section 4.5.5) or a mailer-daemon/postmaster."""
    if address is None:
        return False
    bare = address.strip().strip("<>").strip()
    return not bare or bare.rsplit("@", 1)[0].lower() in DAEMON_NAMES


def normal_address(address: str) -> str:
    """The domain in lower case (RFC 5321 section 2.4); the local part as sent."""
    local, at, domain = address.rpartition("@")
    return f"{local}{at}{domain.lower()}" if at else address


def header(message: Message, name: str) -> str:
    try:
        value = message.get(name)
        return clean_text(str(value)) if value is not None else ""
    except Exception:  # noqa: BLE001 - compat32 may hold a Header we cannot render
        return ""


def addresses_in(message: Message, *names: str) -> list[str]:
    values = [header(message, name) for name in names]
    return [addr for _, addr in getaddresses([v for v in values if v]) if "@" in addr]


def from_mail_system(message: Message) -> bool:
    """A mailer-daemon or postmaster From, or a null or daemon Return-Path."""
    path = header(message, "Return-Path").strip()
    if path and is_daemon(path):
        return True
    return any(a and is_daemon(a) for _, a in getaddresses([header(message, "From")]))


def is_plain_bounce(message: Message) -> bool:
    """From a mail system, and saying so in its subject or in Exim's X-Failed-Recipients:
    ordinary mail that mentions a bounce is not one."""
    if not from_mail_system(message):
        return False
    return bool(header(message, "X-Failed-Recipients")) or bool(
        BOUNCE_SUBJECT.search(header(message, "Subject")[:500])
    )


def parts(message: Message, depth: int = 0) -> Iterator[Message]:
    """Pre-order walk of the MIME tree, not into returned messages, with bounded depth."""
    yield message
    payload = message.get_payload()
    if depth >= MAX_DEPTH or not message.is_multipart() or not isinstance(payload, list):
        return
    if message.get_content_maintype() == "message":
        return
    for child in payload[:MAX_PARTS]:
        if isinstance(child, Message):
            yield from parts(child, depth + 1)


def part_text(part: Message) -> str:
    """A leaf's text: transfer encoding undone, first ``MAX_TEXT`` bytes, charset applied."""
    payload = part.get_payload(decode=True)
    if not isinstance(payload, bytes):
        return ""
    data = payload[:MAX_TEXT]
    try:
        return clean_text(data.decode(part.get_content_charset() or "utf-8", "replace"))
    except LookupError:  # an unknown charset name
        return clean_text(data.decode("utf-8", "replace"))


def body_text(message: Message) -> str:
    """The first text/plain part that is not an attachment, else the first text/html."""
    found_html = ""
    for count, part in enumerate(parts(message)):
        if count >= MAX_PARTS:
            break
        kind = part.get_content_type()
        if part.get_filename() or kind not in ("text/plain", "text/html"):
            continue
        if kind == "text/plain":
            return part_text(part)
        found_html = found_html or html.unescape(_TAG.sub(" ", part_text(part)))
    return found_html


def before_copy(text: str) -> str:
    found = _COPY_START.search(text)
    return text[: found.start()] if found else text


def failed_addresses(message: Message, notice: str) -> list[str]:
    """Exim's X-Failed-Recipients, else the addresses the notice names that are not the
    bounce's own (its To is our sender) and not a mail system's."""
    listed = addresses_in(message, "X-Failed-Recipients")
    own = {a.lower() for a in addresses_in(message, "From", "To", "Cc", "Return-Path")}
    found = listed or ADDRESS.findall(notice)
    unique = dict.fromkeys(a for a in found if a.lower() not in own and not is_daemon(a))
    return list(unique)[:MAX_ADDRESSES]


def details(
    notice: str, address: str, others: list[str]
) -> tuple[str | None, str | None, str | None]:
    """(status, diagnostic, remote MTA) from the text between ``address`` and the next."""
    lowered = notice.lower()
    start = lowered.find(address.lower())
    if start < 0:
        return None, None, None
    others = [o.lower() for o in others if o.lower() != address.lower()]
    after = [p for o in others if (p := lowered.find(o, start + 1)) > start]
    segment = notice[start : min(after, default=len(notice))]
    status = ENHANCED.search(segment)
    host = _REMOTE_HOST.search(segment)
    return (
        ".".join(status.groups()) if status else None,
        _reply(segment) or _first_line_after(segment),
        host.group(1).rstrip(".") if host else None,
    )


def _reply(segment: str) -> str | None:
    """The quoted SMTP reply with its continuation lines: indented (wrapped by the MTA) or
    repeating the code (a multi-line reply, RFC 5321 section 4.2.1)."""
    found = _REPLY.search(segment)
    if found is None:
        return None
    code = found.group(1)
    lines = segment[found.start(1) :].splitlines()
    reply = [lines[0].strip()]
    for line in lines[1:8]:
        if not line.strip() or not (line[0] in " \t" or line.startswith(code)):
            break
        reply.append(line.strip())
    text = " ".join(reply)
    if text.count(")") > text.count("("):  # Sendmail's "(reason: 550 ...)"
        text = text.removesuffix(")")
    return text.strip()[:1000]


def _first_line_after(segment: str) -> str | None:
    lines = [line.strip() for line in segment.splitlines()[1:12]]
    return next((line[:1000] for line in lines if line), None)
