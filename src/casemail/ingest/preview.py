"""A short, safe look at a stored message for people deciding about it (the quarantine)."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy.orm import Session

from casemail.db.blobs import get_blob
from casemail.db.models import InboundReceipt
from casemail.ingest.parse import parse_message

EXCERPT_CHARS = 2000


@dataclass(frozen=True)
class Preview:
    sender: str | None
    subject: str
    date: str | None
    to: list[str]
    excerpt: str
    attachments: list[str]
    size: int


def preview(session: Session, receipt: InboundReceipt) -> Preview:
    raw = get_blob(session, receipt.raw_sha256)
    try:
        parsed = parse_message(raw)
    except Exception:  # noqa: BLE001 - a message we cannot read still gets a preview
        text = raw[:EXCERPT_CHARS].decode("utf-8", "replace")
        return Preview(None, "(unreadable)", None, [], text, [], len(raw))
    body = (parsed.text_body or "").replace("\r\n", "\n")
    return Preview(
        sender=parsed.sender.email if parsed.sender else None,
        subject=parsed.subject,
        date=parsed.date.isoformat() if parsed.date else None,
        to=[a.email for a in parsed.to],
        excerpt=body[:EXCERPT_CHARS] + ("…" if len(body) > EXCERPT_CHARS else ""),
        attachments=[a.filename or a.content_type for a in parsed.attachments],
        size=len(raw),
    )
