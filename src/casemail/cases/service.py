"""Queries on cases and their email history, shared by the API and the CLI.

A deleted case is soft-deleted (``deleted_at``): it is gone from lists and lookups, while
its raw mail and email history stay in the database, never destroyed. Deleting it is also
what lets a POP3 account with ``delete_when_deleted`` remove its mail from the server.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from sqlalchemy import ColumnElement, func, or_, select
from sqlalchemy.orm import Session

from casemail.db.models import Case, Contact, InboundReceipt, Message, QuarantineEntry, Team, User
from casemail.db.types import utcnow

CASE_STATUSES = ("new", "open", "pending", "closed")


@dataclass(frozen=True)
class CaseFilter:
    status: str | None = None
    team_id: int | None = None
    assignee_user_id: int | None = None
    unassigned: bool = False
    search: str | None = None  # in the subject, the contact's address or name, or "#123"


def list_cases(
    session: Session,
    *,
    status: str | None = None,
    limit: int = 50,
    offset: int = 0,
    where: CaseFilter | None = None,
) -> list[Case]:
    where = where or CaseFilter(status=status)
    query = select(Case).where(Case.deleted_at.is_(None))
    query = query.order_by(Case.last_message_at.desc(), Case.id.desc())
    if where.status:
        query = query.where(Case.status == where.status)
    if where.team_id is not None:
        query = query.where(Case.team_id == where.team_id)
    if where.assignee_user_id is not None:
        query = query.where(Case.assignee_user_id == where.assignee_user_id)
    if where.unassigned:
        query = query.where(Case.assignee_user_id.is_(None))
    if where.search and where.search.strip():
        query = query.where(_matches(where.search.strip()))
    return list(session.scalars(query.limit(limit).offset(offset)).unique())


def _matches(text: str) -> ColumnElement[bool]:
    number = text.removeprefix("#")
    # LIKE wildcards typed by the user are taken literally (escaped), case-insensitively.
    pattern = "%" + text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
    contacts = select(Contact.id).where(
        or_(Contact.email.ilike(pattern, escape="\\"), Contact.name.ilike(pattern, escape="\\"))
    )
    found = or_(Case.subject.ilike(pattern, escape="\\"), Case.contact_id.in_(contacts))
    return or_(found, Case.id == int(number)) if number.isdigit() and len(number) < 12 else found


class CaseUpdateError(ValueError):
    pass


def update_case(
    session: Session,
    case: Case,
    *,
    status: str | None = None,
    assignee_user_id: int | Literal["keep"] | None = "keep",
    team_id: int | Literal["keep"] | None = "keep",
) -> Case:
    """Change the status, the assignee (None: nobody) or the team; the assignee and the team
    must be of the case's company (a scoped session does not even find others)."""
    if status is not None:
        if status not in CASE_STATUSES:
            raise CaseUpdateError(f"status must be one of {', '.join(CASE_STATUSES)}")
        case.status = status
    if assignee_user_id != "keep":
        if assignee_user_id is not None:
            user = session.get(User, assignee_user_id)
            if user is None or user.company_id != case.company_id or not user.active:
                raise CaseUpdateError(f"no active user {assignee_user_id} to assign to")
        case.assignee_user_id = assignee_user_id
    if team_id != "keep":
        if team_id is not None:
            team = session.get(Team, team_id)
            if team is None or team.company_id != case.company_id:
                raise CaseUpdateError(f"no team {team_id}")
        case.team_id = team_id
    case.updated_at = utcnow()
    session.flush()
    return case


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
