"""Stage: write the decision — a new case, or a message appended to one — and its parts."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from casemail.db.blobs import put_blob
from casemail.db.models import Attachment, Case, Channel, Contact, InboundReceipt, Message
from casemail.db.types import utcnow
from casemail.db.upsert import insert_ignore
from casemail.ingest.types import Address, ParsedMessage, RuleHit

NO_SUBJECT = "(no subject)"


def contact_for(session: Session, company_id: int, sender: Address) -> Contact:
    email = sender.email.strip().lower()
    insert_ignore(
        session,
        Contact.__table__,  # type: ignore[arg-type]
        conflict=["company_id", "email"],
        returning=Contact.id,
        values={
            "company_id": company_id,
            "email": email,
            "name": sender.name,
            "created_at": utcnow(),
        },
    )
    contact = session.scalar(
        select(Contact).where(Contact.company_id == company_id, Contact.email == email)
    )
    assert contact is not None
    if sender.name and not contact.name:
        contact.name = sender.name
    return contact


def open_case(
    session: Session, channel: Channel, parsed: ParsedMessage, *, status: str = "new"
) -> Case:
    assert parsed.sender is not None
    contact = contact_for(session, channel.company_id, parsed.sender)
    case = Case(
        company_id=channel.company_id,
        channel_id=channel.id,
        contact_id=contact.id,
        subject=parsed.subject or NO_SUBJECT,
        status=status,
    )
    session.add(case)
    session.flush()
    return case


def _addresses(addresses: tuple[Address, ...]) -> list[dict[str, str | None]]:
    return [{"email": a.email, "name": a.name} for a in addresses]


def append_message(
    session: Session,
    *,
    case: Case,
    receipt: InboundReceipt,
    parsed: ParsedMessage,
    hits: tuple[RuleHit, ...],
) -> Message:
    if parsed.sender is not None:
        contact_for(session, case.company_id, parsed.sender)
    message = Message(
        case_id=case.id,
        channel_id=receipt.channel_id,
        inbound_id=receipt.id,
        direction="inbound",
        message_id=parsed.message_id,
        in_reply_to=parsed.in_reply_to,
        references=list(parsed.references),
        subject=parsed.subject,
        from_address=parsed.sender.email if parsed.sender else None,
        from_name=parsed.sender.name if parsed.sender else None,
        to_addresses=_addresses(parsed.to),
        cc_addresses=_addresses(parsed.cc),
        sent_at=parsed.date,
        text_body=parsed.text_body,
        html_body=parsed.html_body,
        raw_sha256=receipt.raw_sha256,
        rule_hits=[h.as_dict() for h in hits],
        parse_defects=list(parsed.defects),
    )
    session.add(message)
    session.flush()
    for part in parsed.attachments:
        session.add(
            Attachment(
                message_pk=message.id,
                filename=part.filename,
                content_type=part.content_type,
                size=len(part.data),
                sha256=put_blob(session, part.data),
                content_id=part.content_id,
                inline=part.inline,
            )
        )
    now = utcnow()
    case.last_message_at = now
    case.updated_at = now
    return message
