"""Compose outgoing mail with everything threading and loop protection rely on.

Every message gets, when it is queued (never at send time, so a retry is the same message):
a Message-ID on the sending domain (RFC 5322 section 3.6.4), Date, In-Reply-To and
References (section 3.6.4), the case's subject tag, the signed reply address as Reply-To,
the hidden marker in the body, and our loop header. Automatic mail also carries
``Auto-Submitted`` (RFC 3834 section 5) so well-behaved responders stay quiet.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from email.message import EmailMessage
from email.policy import SMTP
from email.utils import format_datetime, formataddr, make_msgid

from casemail.channels.addresses import domain_of
from casemail.db.types import utcnow
from casemail.identity import LOOP_HEADER, Identity

MAX_REFERENCES = 20  # RFC 5322 section 3.6.4 lets References grow; keep the newest few


@dataclass(frozen=True)
class OutgoingAttachment:
    filename: str
    content_type: str
    data: bytes = field(repr=False)


@dataclass(frozen=True)
class Draft:
    kind: str  # agent | acknowledgement | notice | rejection
    from_address: str
    from_name: str | None
    to: tuple[str, ...]
    subject: str
    text: str
    cc: tuple[str, ...] = ()
    bcc: tuple[str, ...] = ()  # envelope only: never a header (RFC 5322 section 3.6.3)
    html: str | None = None
    attachments: tuple[OutgoingAttachment, ...] = ()
    case_id: int | None = None
    reply_to: str | None = None
    in_reply_to: str | None = None
    references: tuple[str, ...] = ()
    auto_submitted: str | None = None  # "auto-replied" or "auto-generated"

    @property
    def recipients(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys(self.to + self.cc + self.bcc))


def compose(draft: Draft, identity: Identity) -> EmailMessage:
    message = EmailMessage(policy=SMTP)
    message["From"] = formataddr((draft.from_name or "", draft.from_address))
    message["To"] = ", ".join(draft.to)
    if draft.cc:
        message["Cc"] = ", ".join(draft.cc)
    message["Subject"] = draft.subject
    message["Date"] = format_datetime(utcnow())
    message["Message-ID"] = make_msgid(domain=domain_of(draft.from_address) or None)
    if draft.reply_to:
        message["Reply-To"] = draft.reply_to
    if draft.in_reply_to:
        message["In-Reply-To"] = f"<{draft.in_reply_to}>"
        chain = [*list(draft.references[-(MAX_REFERENCES - 1) :]), draft.in_reply_to]
        message["References"] = " ".join(f"<{i}>" for i in dict.fromkeys(chain))
    if draft.auto_submitted:
        message["Auto-Submitted"] = draft.auto_submitted
        # Exchange honours this instead of Auto-Submitted (MS-OXCMAIL 2.2.3.2.14).
        message["X-Auto-Response-Suppress"] = "All"
    message[LOOP_HEADER] = identity.instance_id
    _bodies(message, draft, identity)
    for part in draft.attachments:
        maintype, _, subtype = part.content_type.partition("/")
        message.add_attachment(
            part.data, maintype=maintype, subtype=subtype or "octet-stream", filename=part.filename
        )
    return message


def _bodies(message: EmailMessage, draft: Draft, identity: Identity) -> None:
    """Text and/or HTML; the hidden marker goes into both (quoted by replies, it finds the
    case when a provider rewrote our Message-ID)."""
    marker = identity.marker(draft.case_id) if draft.case_id is not None else ""
    text = draft.text or ""
    if marker:
        text = f"{text.rstrip()}\n\n{marker}\n"
    message.set_content(text)
    if draft.html:
        hidden = f'<div style="display:none;font-size:0">{marker}</div>' if marker else ""
        message.add_alternative(f"{draft.html}{hidden}", subtype="html")


def bare_message_id(message: EmailMessage) -> str:
    return str(message["Message-ID"]).strip().strip("<>")
