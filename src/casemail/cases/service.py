"""Queries on cases and their email history, shared by the API and the CLI.

A deleted case is soft-deleted (``deleted_at``): it is gone from lists and lookups, while
its raw mail and email history stay in the database, never destroyed. Deleting it is also
what lets a POP3 account with ``delete_when_deleted`` remove its mail from the server.
"""

from __future__ import annotations

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from casemail.db.models import Case, InboundReceipt, Message, QuarantineEntry
from casemail.db.types import utcnow

CASE_STATUSES = ("new", "open", "pending", "closed")


def list_cases(
    session: Session, *, status: str | None = None, limit: int = 50, offset: int = 0
) -> list[Case]:
    query = select(Case).where(Case.deleted_at.is_(None))
    query = query.order_by(Case.last_message_at.desc(), Case.id.desc())
    if status:
        query = query.where(Case.status == status)
    return list(session.scalars(query.limit(limit).offset(offset)).unique())


def get_case(session: Session, case_id: int) -> Case | None:
    """The case, or None when there is none or it was deleted."""
    case = session.get(Case, case_id)
    return case if case is not None and case.deleted_at is None else None


def delete_case(session: Session, case_id: int) -> Case | None:
    """Soft-delete the case; None when there is no such case (or it is deleted already)."""
    case = get_case(session, case_id)
    if case is not None:
        case.deleted_at = utcnow()
        case.updated_at = case.deleted_at
        session.flush()
    return case


def case_messages(session: Session, case_id: int) -> list[Message]:
    return list(
        session.scalars(select(Message).where(Message.case_id == case_id).order_by(Message.id))
    )


def message_count(session: Session, case_id: int) -> int:
    return session.scalar(select(func.count()).where(Message.case_id == case_id)) or 0


def list_quarantine(
    session: Session, *, state: str | None = "held", limit: int = 100, offset: int = 0
) -> list[QuarantineEntry]:
    query = select(QuarantineEntry).order_by(QuarantineEntry.id.desc())
    if state:
        query = query.where(QuarantineEntry.state == state)
    return list(session.scalars(query.limit(limit).offset(offset)))


def list_inbound(
    session: Session, *, state: str | None = None, limit: int = 100, offset: int = 0
) -> list[InboundReceipt]:
    """Received mail, newest first: what became of each message, including the mail the
    pipeline discarded or rejected (with the rule hits that decided it)."""
    query = select(InboundReceipt).order_by(InboundReceipt.id.desc())
    if state:
        query = query.where(InboundReceipt.state == state)
    return list(session.scalars(query.limit(limit).offset(offset)))
