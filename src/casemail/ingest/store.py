"""Stage: write the decision — a new case, or a message appended to one — and its parts.

Nothing here writes row by row: the batch driver (``decide.py``) writes the cases of a
whole batch in one flush and its messages and attachments with one executemany each.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import insert, select, tuple_
from sqlalchemy.orm import Session

from casemail.db.models import Case, Channel, Contact, Message
from casemail.db.types import utcnow
from casemail.db.upsert import insert_ignore_returning
from casemail.ingest.types import Address, ClaimedReceipt, ParsedMessage, RuleHit

NO_SUBJECT = "(no subject)"
KEYS_PER_QUERY = 250  # (company, email) pairs per IN (...) list


def contact_key(company_id: int, sender: Address) -> tuple[int, str]:
    return company_id, sender.email.strip().lower()


class ContactBook:
    """The contacts of a batch's senders: created where missing, read with one query.

    Created with ``INSERT … ON CONFLICT DO NOTHING``, so two workers meeting the same new
    sender never fail on the unique (company, email) constraint.
    """

    def __init__(self, contacts: dict[tuple[int, str], Contact]) -> None:
        self._contacts = contacts

    @classmethod
    def load(cls, session: Session, senders: list[tuple[int, Address]]) -> ContactBook:
        rows = {
            contact_key(company_id, sender): {
                "company_id": company_id,
                "email": contact_key(company_id, sender)[1],
                "name": sender.name,
                "created_at": utcnow(),
            }
            for company_id, sender in senders
        }
        insert_ignore_returning(
            session,
            Contact.__table__,  # type: ignore[arg-type]
            conflict=["company_id", "email"],
            rows=list(rows.values()),
            returning=(Contact.id,),
        )
        keys = list(rows)
        contacts: dict[tuple[int, str], Contact] = {}
        for start in range(0, len(keys), KEYS_PER_QUERY):
            chunk = keys[start : start + KEYS_PER_QUERY]
            query = select(Contact).where(tuple_(Contact.company_id, Contact.email).in_(chunk))
            contacts.update(((c.company_id, c.email), c) for c in session.scalars(query))
        return cls(contacts)

    def contact_for(self, company_id: int, sender: Address) -> Contact:
        contact = self._contacts[contact_key(company_id, sender)]
        if sender.name and not contact.name:
            contact.name = sender.name
        return contact


@dataclass
class NewCase:
    """A case a batch opens, before it is written: plain data, not an ORM object (building
    thousands of those cost more than inserting them). ``insert_cases`` sets ``id``."""

    company_id: int
    channel_id: int
    contact_id: int
    subject: str
    status: str
    created_at: datetime
    id: int | None = None
    deleted_at: datetime | None = None

    def row(self) -> dict[str, Any]:
        return {
            "company_id": self.company_id,
            "channel_id": self.channel_id,
            "contact_id": self.contact_id,
            "subject": self.subject,
            "status": self.status,
            "created_at": self.created_at,
            "updated_at": self.created_at,
            "last_message_at": self.created_at,
        }


AnyCase = Case | NewCase


def new_case(channel: Channel, parsed: ParsedMessage, contact: Contact, *, status: str) -> NewCase:
    return NewCase(
        company_id=channel.company_id,
        channel_id=channel.id,
        contact_id=contact.id,
        subject=parsed.subject or NO_SUBJECT,
        status=status,
        created_at=utcnow(),
    )


def insert_cases(session: Session, cases: list[NewCase]) -> None:
    """Insert new cases in one executemany and give each its id."""
    if not cases:
        return
    table = Case.__table__
    stmt = insert(table).returning(table.c.id, sort_by_parameter_order=True)  # type: ignore[arg-type]
    answer = session.execute(stmt, [case.row() for case in cases])
    for case, (case_id,) in zip(cases, answer, strict=True):
        case.id = case_id


def _addresses(addresses: tuple[Address, ...]) -> list[dict[str, str | None]]:
    return [{"email": a.email, "name": a.name} for a in addresses]


def message_row(
    *, case: AnyCase, receipt: ClaimedReceipt, parsed: ParsedMessage, hits: tuple[RuleHit, ...]
) -> dict[str, Any]:
    """The ``messages`` row of an inbound message; an existing case is marked as just
    written to (a new one was inserted with that time)."""
    now = utcnow()
    if isinstance(case, Case):
        case.last_message_at = now
        case.updated_at = now
    return {
        "case_id": case.id,
        "channel_id": receipt.channel_id,
        "inbound_id": receipt.id,
        "direction": "inbound",
        "message_id": parsed.message_id,
        "in_reply_to": parsed.in_reply_to,
        "references": list(parsed.references),
        "subject": parsed.subject,
        "from_address": parsed.sender.email if parsed.sender else None,
        "from_name": parsed.sender.name if parsed.sender else None,
        "to_addresses": _addresses(parsed.to),
        "cc_addresses": _addresses(parsed.cc),
        "sent_at": parsed.date,
        "text_body": parsed.text_body,
        "html_body": parsed.html_body,
        "raw_sha256": receipt.raw_sha256,
        "rule_hits": [h.as_dict() for h in hits],
        "parse_defects": list(parsed.defects),
        "created_at": now,
    }


def insert_messages(session: Session, rows: list[dict[str, Any]]) -> dict[int, int]:
    """Insert the rows in one executemany; returns message id by inbound id."""
    stmt = insert(Message.__table__).returning(  # type: ignore[arg-type]
        Message.__table__.c.inbound_id, Message.__table__.c.id
    )
    return {int(inbound): int(pk) for inbound, pk in session.execute(stmt, rows)}


def attachment_rows(
    message_pk: int, parsed: ParsedMessage, digests: list[str]
) -> list[dict[str, Any]]:
    return [
        {
            "message_pk": message_pk,
            "filename": part.filename,
            "content_type": part.content_type,
            "size": len(part.data),
            "sha256": digest,
            "content_id": part.content_id,
            "inline": part.inline,
        }
        for part, digest in zip(parsed.attachments, digests, strict=True)
    ]
