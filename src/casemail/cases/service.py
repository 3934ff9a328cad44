"""Queries on cases and their email history, shared by the API and the CLI."""

from __future__ import annotations

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from casemail.db.models import Case, Message, QuarantineEntry

CASE_STATUSES = ("new", "open", "pending", "closed")


def list_cases(
    session: Session, *, status: str | None = None, limit: int = 50, offset: int = 0
) -> list[Case]:
    query = select(Case).order_by(Case.last_message_at.desc(), Case.id.desc())
    if status:
        query = query.where(Case.status == status)
    return list(session.scalars(query.limit(limit).offset(offset)).unique())


def get_case(session: Session, case_id: int) -> Case | None:
    return session.get(Case, case_id)


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
