"""Companies: every account, channel, team, case and message belongs to one. The CLI (the
installation's operator) adds them; their admins then run them through the API."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from casemail.db.models import Company, User
from casemail.users.service import UserError


def add_company(session: Session, name: str) -> Company:
    clean = name.strip()
    if not clean or len(clean) > 200:
        raise UserError("a company needs a name of 1 to 200 characters")
    company = Company(name=clean)
    try:
        with session.begin_nested():
            session.add(company)
    except IntegrityError as exc:
        raise UserError(f"a company named {clean!r} exists already", status=409) from exc
    return company


def list_companies(session: Session) -> list[Company]:
    return list(session.scalars(select(Company).order_by(Company.id)))


def find_company(session: Session, ref: int | str) -> Company:
    """A company by id or by name."""
    if isinstance(ref, int) or ref.isdigit():
        company = session.get(Company, int(ref))
    else:
        company = session.scalar(select(Company).where(Company.name == ref.strip()))
    if company is None:
        raise UserError(f"no company {ref!r}", status=404)
    return company


def first_admin(session: Session, company_id: int) -> User | None:
    query = select(User).where(
        User.company_id == company_id, User.role == "admin", User.active.is_(True)
    )
    return session.scalars(query.order_by(User.id).limit(1)).first()
