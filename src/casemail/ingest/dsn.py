"""Bounces and delivery status notifications: which of our messages failed, and why.

A message we sent that cannot be delivered comes back as a bounce. When the failing MTA
follows RFC 3464 it is a ``multipart/report; report-type=delivery-status`` (RFC 6522):
a human-readable part, a ``message/delivery-status`` part with one block of fields per
recipient, and the returned message or its header section, whose Message-ID names the
outbound message to mark as failed. Older MTAs send plain text instead; those are read by
``dsn_heuristic``. A delayed DSN is a report too, but not a failure: delivery goes on.

Bounces are unauthenticated mail from anyone, so reading one must never raise and must
cost bounded work: the input is cut at ``MAX_RAW``, the MIME walk has a depth and part
cap, and every text read is capped.
"""

from __future__ import annotations

import email
import re
from collections.abc import Mapping
from dataclasses import dataclass
from email import policy
from email.message import Message

from casemail.ingest import dsn_heuristic as plain
from casemail.ingest.dsn_reason import explain
from casemail.ingest.dsn_returned import quoted_ids, returned_ids
from casemail.ingest.headers import clean_text

# The report and the returned header section come first; what follows (the returned body)
# costs parse time (the feed parser's is per line and per open multipart) for nothing.
MAX_RAW = 256 * 1024
MAX_CONTAINERS = 24  # multipart and message parts; real bounces have three to ten
_CONTAINER = re.compile(rb"(?i)content-type:\s*(?:multipart|message)/")
MAX_RECIPIENTS = 100
MAX_REASON = 500
ACTIONS = frozenset({"failed", "delayed", "delivered", "relayed", "expanded"})
STATUS_TYPES = frozenset({"message/delivery-status", "message/global-delivery-status"})
# RFC 3464 section 2.1.1: a field block is "name: value" lines with folded continuations.
_FIELD = re.compile(r"([!-9;-~]{1,80})[ \t]*:(.*)")


@dataclass(frozen=True)
class RecipientStatus:
    address: str  # Final-Recipient (or Original-Recipient) address, without "rfc822;"
    action: str  # failed | delayed | delivered | relayed | expanded (lower case)
    status: str | None  # e.g. "5.1.1" (RFC 3463)
    diagnostic: str | None  # Diagnostic-Code text, e.g. "smtp; 550 5.1.1 User unknown"
    remote_mta: str | None  # Remote-MTA without its type, e.g. "mx.example.org"


@dataclass(frozen=True)
class BounceReport:
    original_message_ids: tuple[str, ...]  # msg-ids without angle brackets
    recipients: tuple[RecipientStatus, ...]
    standard: bool  # True when read from an RFC 3464 message/delivery-status part

    @property
    def failed(self) -> bool:
        """A recipient failed; a plain-text bounce is a failure even when it names none."""
        return not self.standard or any(r.action == "failed" for r in self.recipients)

    @property
    def permanent(self) -> bool:
        """A recipient failed for good: a 5.x.x status (RFC 3463 section 3.1), or none known."""
        if not self.recipients:
            return not self.standard
        return any(r.action == "failed" and (r.status or "5")[0] == "5" for r in self.recipients)

    def reason(self) -> str:
        """Plain words for a UI, at most ``MAX_REASON`` characters."""
        chosen = _most_severe(self.recipients)
        if not chosen:
            return "delivery failed" if self.failed else "delivery status report with no recipient"
        text = "; ".join(explain(r.address, r.action, r.status, r.diagnostic) for r in chosen)
        return text if len(text) <= MAX_REASON else text[: MAX_REASON - 1] + "…"


def _most_severe(recipients: tuple[RecipientStatus, ...]) -> list[RecipientStatus]:
    """The failed recipients, else the delayed ones, else all."""
    for action in ("failed", "delayed"):
        chosen = [r for r in recipients if r.action == action]
        if chosen:
            return chosen
    return list(recipients)


def looks_like_bounce(
    *, content_type: str, header_fields: Mapping[str, str], sender: str | None, subject: str
) -> bool:
    """Cheap pre-check on already-parsed values: worth calling ``read_bounce``?

    The signs every bounce ``read_bounce`` reads carries: a report (RFC 6522), a null or
    daemon Return-Path (RFC 5321 section 4.5.5), a mailer-daemon or postmaster sender,
    Exim's X-Failed-Recipients; or, when the parse found no sender address (a bare
    "MAILER-DAEMON" has no domain), a bounce subject. ``header_fields`` by lower-case name.
    """
    if content_type.strip().lower() == "multipart/report":
        return True
    if "x-failed-recipients" in header_fields:
        return True
    path = header_fields.get("return-path")
    if path is not None and plain.is_daemon(path):
        return True
    if sender is None:
        return bool(plain.BOUNCE_SUBJECT.search(subject[:500]))
    return plain.is_daemon(sender) and bool(sender.strip())


def read_bounce(raw: bytes) -> BounceReport | None:
    """The bounce or DSN in ``raw``, or None when it is none. Never raises."""
    try:
        message = email.message_from_bytes(_bounded(raw), policy=policy.compat32)
        if message.get_content_type() == "multipart/report":
            return _from_report(message)
        if not plain.is_plain_bounce(message):
            return None
        report = _nested_report(message)
        return (_from_report(report, message) if report else None) or _plain_report(message)
    except Exception:  # noqa: BLE001 - hostile or broken input is not a readable bounce
        return None


def _bounded(raw: bytes) -> bytes:
    """``raw`` cut at ``MAX_RAW`` and before too many nested parts: the feed parser's work
    grows with the open parts per line, and it recurses for each (RecursionError)."""
    raw = raw[:MAX_RAW]
    for count, found in enumerate(_CONTAINER.finditer(raw)):
        if count == MAX_CONTAINERS:
            return raw[: found.start()]
    return raw


def _nested_report(message: Message) -> Message | None:
    """A report wrapped by a gateway (say, multipart/mixed with a footer)."""
    for count, part in enumerate(plain.parts(message)):
        if count >= plain.MAX_PARTS:
            break
        if part is not message and part.get_content_type() == "multipart/report":
            return part
    return None


def _from_report(report: Message, top: Message | None = None) -> BounceReport | None:
    top = top or report
    status_part = _child(report, STATUS_TYPES)
    report_type = str(report.get_param("report-type") or "").lower()
    if status_part is None and report_type != "delivery-status":
        return None  # RFC 8098 read receipts, RFC 5965 abuse reports: not bounces
    blocks = field_blocks(_status_text(status_part)) if status_part is not None else []
    recipients = tuple(r for b in blocks if (r := _recipient(b)) is not None)
    ids = returned_ids(report, blocks)
    if recipients:
        return BounceReport(ids, recipients[:MAX_RECIPIENTS], standard=True)
    # RFC 3464 section 2.3 requires a block per recipient; without one (a truncated or
    # garbled report) the human-readable part is read as a plain bounce if it is one.
    if plain.is_plain_bounce(top):
        return _plain_report(top, ids)
    return BounceReport(ids, (), standard=True)


def _child(report: Message, types: frozenset[str]) -> Message | None:
    payload = report.get_payload()
    children = payload[: plain.MAX_PARTS] if isinstance(payload, list) else []
    found = (c for c in children if isinstance(c, Message) and c.get_content_type() in types)
    return next(found, None)


def _status_text(part: Message) -> str:
    """The delivery-status text. The stdlib splits message/delivery-status into one
    header-only message per block (and ignores a transfer encoding); rebuild the text."""
    payload = part.get_payload()
    if not isinstance(payload, list):
        return plain.part_text(part)
    blocks = [b for b in payload[: MAX_RECIPIENTS + 1] if isinstance(b, Message)]
    text = "\n\n".join(_block_source(b) for b in blocks)
    encoding = plain.header(part, "Content-Transfer-Encoding").strip().lower()
    if encoding in ("base64", "quoted-printable"):
        copy = Message()
        copy["Content-Transfer-Encoding"] = encoding
        copy.set_payload(text[: plain.MAX_TEXT * 2])
        return plain.part_text(copy)
    return text[: plain.MAX_TEXT]


def _block_source(block: Message) -> str:
    fields = "".join(f"{name}: {value}\n" for name, value in block.items())
    body = block.get_payload()
    return fields + (body if isinstance(body, str) else "")


def field_blocks(text: str) -> list[dict[str, str]]:
    """Blocks of fields split by empty lines (RFC 3464 section 2.1.1), names lower case,
    folded lines unfolded, the first of repeated fields kept, lines that are no field
    skipped."""
    blocks: list[dict[str, str]] = [{}]
    name: str | None = None
    for line in text[: plain.MAX_TEXT].splitlines():
        if not line.strip():
            if blocks[-1] and len(blocks) <= MAX_RECIPIENTS:
                blocks.append({})
            name = None
        elif line[0] in " \t":
            if name is not None and len(blocks[-1][name]) < 2000:
                blocks[-1][name] += " " + line.strip()
        elif (found := _FIELD.match(line)) is not None:
            name = found.group(1).lower()
            name = None if name in blocks[-1] else name
            if name is not None:
                blocks[-1][name] = found.group(2).strip()[:2000]
        else:
            name = None
    return [b for b in blocks if b]


def _recipient(fields: Mapping[str, str]) -> RecipientStatus | None:
    """One per-recipient block (RFC 3464 section 2.3), or None for the per-message block
    (section 2.2) and for a block too broken to name a recipient and what happened."""
    address = _typed_value(fields.get("final-recipient")) or _typed_value(
        fields.get("original-recipient")
    )
    if not address or "@" not in address:
        return None
    diagnostic = clean_text(fields.get("diagnostic-code", "")) or None
    found = plain.ENHANCED.match(fields.get("status", "").strip()) or plain.ENHANCED.search(
        diagnostic or ""
    )
    status = ".".join(found.groups()) if found else None
    words = fields.get("action", "").split()
    # Section 2.3.3: the action; when garbled, the class of the status says the same.
    action = words[0].lower() if words and words[0].lower() in ACTIONS else None
    action = action or {"5": "failed", "4": "delayed", "2": "delivered"}.get((status or " ")[0])
    if action is None:
        return None
    remote = _typed_value(fields.get("remote-mta")).split(" ")[0].rstrip(".") or None
    return RecipientStatus(plain.normal_address(address), action, status, diagnostic, remote)


def _typed_value(value: str | None) -> str:
    """``type ";" value`` (RFC 3464 section 2.1.2), the value without type or brackets."""
    if not value:
        return ""
    kind, sep, rest = clean_text(value).partition(";")
    return (rest if sep else kind).strip().strip("<>").strip()[:320]


def _plain_report(message: Message, ids: tuple[str, ...] = ()) -> BounceReport:
    """A bounce without a readable delivery-status part: failed addresses and reasons from
    the text before the returned copy, the Message-ID from the returned part or the copy."""
    text = plain.body_text(message)
    notice = plain.before_copy(text)
    addresses = plain.failed_addresses(message, notice)
    recipients = tuple(
        RecipientStatus(plain.normal_address(a), "failed", *plain.details(notice, a, addresses))
        for a in addresses
    )
    ids = ids or returned_ids(message, []) or quoted_ids(text)
    return BounceReport(ids, recipients, standard=False)
