"""Stage: write the decision — a new case, or a message appended to one — and its parts.

Nothing here writes row by row: the batch driver (``decide.py``) writes the cases of a
whole batch in one flush and its messages and attachments with one executemany each.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import bindparam, insert, select, tuple_, update
from sqlalchemy.orm import Session

from casemail.channels.addresses import base_address
from casemail.db.models import ADDRESS_LEN, HEADER_LEN, Case, Channel, Contact, Message
from casemail.db.types import clip, utcnow
from casemail.db.upsert import insert_ignore_returning
from casemail.ingest.types import Address, ClaimedReceipt, ParsedMessage, RuleHit

NO_SUBJECT = "(no subject)"
KEYS_PER_QUERY = 250  # (company, email) pairs per IN (...) list


def sender_key(email: str) -> str:
    """The sender as contacts and the rate limit know it: lower case, without a +tag
    (RFC 5233 subaddress), so ``Ann+orders@Example.com`` is ``ann@example.com``."""
    return base_address(email.strip())


def contact_key(company_id: int, sender: Address) -> tuple[int, str]:
    return company_id, clip(sender_key(sender.email), ADDRESS_LEN) or ""


@dataclass
class BatchContact:
    """A sender's contact as a batch sees it: plain data, read with one Core query (ORM
    objects for a batch's senders cost about 5% of a mailbox sync)."""

    id: int
    name: str | None


class ContactBook:
    """The contacts of a batch's senders: created where missing (unless the channel takes
    known senders only), read with one or two queries.

    Created with ``INSERT … ON CONFLICT DO NOTHING``, so two workers meeting the same new
    sender never fail on the unique (company, email) constraint.
    """

    def __init__(self, contacts: dict[tuple[int, str], BatchContact], created: set[int]) -> None:
        self._contacts = contacts
        self._created = created
        self._named: dict[int, str] = {}  # contacts without a name that a message names

    @classmethod
    def load(
        cls, session: Session, senders: list[tuple[int, Address]], *, create: set[tuple[int, str]]
    ) -> ContactBook:
        """``create``: the (company, sender key) pairs that may become new contacts.

        Read first, then insert only the missing ones: most senders of a batch are known,
        and an insert that conflicts costs as much as one that does not."""
        keys = list(dict.fromkeys(contact_key(company, sender) for company, sender in senders))
        names = {contact_key(company, sender): sender.name for company, sender in senders}
        contacts = _read_contacts(session, keys)
        now = utcnow()
        rows = [
            {
                "company_id": key[0],
                "email": key[1],
                "name": clip(names[key], HEADER_LEN),
                "created_at": now,
            }
            for key in keys
            if key in create and key not in contacts
        ]
        inserted = insert_ignore_returning(
            session,
            Contact.__table__,  # type: ignore[arg-type]
            conflict=["company_id", "email"],
            rows=rows,
            returning=(Contact.id,),
        )
        # Those not inserted were created meanwhile by another worker: read them too.
        contacts.update(_read_contacts(session, [k for k in keys if k not in contacts]))
        return cls(contacts, {row.id for row in inserted})

    def contact_for(self, company_id: int, sender: Address) -> BatchContact | None:
        contact = self._contacts.get(contact_key(company_id, sender))
        if contact is not None and sender.name and not contact.name:
            contact.name = clip(sender.name, HEADER_LEN)
            self._named[contact.id] = contact.name or ""
        return contact

    def known_before(self, contact: BatchContact | None) -> bool:
        """The contact existed before this batch (an earlier message of the batch that
        created it counts as new: the channel did not know the sender)."""
        return contact is not None and contact.id not in self._created

    def write_names(self, session: Session) -> None:
        """Give the contacts that had no name the first name a message of the batch used."""
        if not self._named:
            return
        table = Contact.__table__
        statement = (
            update(table)  # type: ignore[arg-type]
            .where(table.c.id == bindparam("contact_id"))
            .values(name=bindparam("new_name"))
        )
        session.execute(
            statement,
            [{"contact_id": i, "new_name": name} for i, name in self._named.items()],
        )
        self._named.clear()


def _read_contacts(
    session: Session, keys: list[tuple[int, str]]
) -> dict[tuple[int, str], BatchContact]:
    contacts: dict[tuple[int, str], BatchContact] = {}
    c = Contact.__table__.c
    for start in range(0, len(keys), KEYS_PER_QUERY):
        chunk = keys[start : start + KEYS_PER_QUERY]
        query = select(c.id, c.company_id, c.email, c.name).where(
            tuple_(c.company_id, c.email).in_(chunk)
        )
        for contact_id, company_id, email, name in session.execute(query):
            contacts[(company_id, email)] = BatchContact(contact_id, name)
    return contacts


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
    team_id: int | None = None
    linked_case_id: int | None = None
    fields: dict[str, str] | None = None
    id: int | None = None
    deleted_at: datetime | None = None

    def row(self) -> dict[str, Any]:
        return {
            "company_id": self.company_id,
            "channel_id": self.channel_id,
            "contact_id": self.contact_id,
            "subject": self.subject,
            "status": self.status,
            "team_id": self.team_id,
            "linked_case_id": self.linked_case_id,
            "fields": self.fields or {},
            "created_at": self.created_at,
            "updated_at": self.created_at,
            "last_message_at": self.created_at,
        }


AnyCase = Case | NewCase


def new_case(
    channel: Channel,
    parsed: ParsedMessage,
    contact: BatchContact,
    *,
    status: str,
    team_id: int | None,
    linked_case_id: int | None,
) -> NewCase:
    return NewCase(
        company_id=channel.company_id,
        channel_id=channel.id,
        contact_id=contact.id,
        subject=parsed.subject or NO_SUBJECT,
        status=status,
        created_at=utcnow(),
        team_id=team_id,
        linked_case_id=linked_case_id,
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
    *,
    case: AnyCase,
    receipt: ClaimedReceipt,
    parsed: ParsedMessage,
    hits: tuple[RuleHit, ...],
    classification: str,
    reports_on_outbox_id: int | None = None,
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
        "message_id": clip(parsed.message_id, HEADER_LEN),
        "in_reply_to": clip(parsed.in_reply_to, HEADER_LEN),
        "references": list(parsed.references),
        "subject": parsed.subject,
        "from_address": clip(parsed.sender.email, ADDRESS_LEN) if parsed.sender else None,
        "from_name": clip(parsed.sender.name, HEADER_LEN) if parsed.sender else None,
        "to_addresses": _addresses(parsed.to),
        "cc_addresses": _addresses(parsed.cc),
        "sent_at": parsed.date,
        "text_body": parsed.text_body,
        "html_body": parsed.html_body,
        "raw_sha256": receipt.raw_sha256,
        "rule_hits": [h.as_dict() for h in hits],
        "parse_defects": list(parsed.defects),
        "created_at": now,
        "classification": classification,
        "sender_key": clip(sender_key(parsed.sender.email), ADDRESS_LEN) if parsed.sender else None,
        "reports_on_outbox_id": reports_on_outbox_id,
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
            "filename": clip(part.filename, HEADER_LEN),
            "content_type": clip(part.content_type, 255),
            "size": len(part.data),
            "sha256": digest,
            "content_id": clip(part.content_id, HEADER_LEN),
            "inline": part.inline,
        }
        for part, digest in zip(parsed.attachments, digests, strict=True)
    ]
