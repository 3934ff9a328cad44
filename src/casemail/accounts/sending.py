"""Which account sends: for a user, their personal default, else their team's, else the
company's global account; product notices always go through the system account."""

from __future__ import annotations

from sqlalchemy import ColumnElement, or_, select
from sqlalchemy.orm import Session

from casemail.auth.tenancy import owning_company
from casemail.db.models import Account
from casemail.users.service import team_ids_of


def _usable() -> list[ColumnElement[bool]]:
    return [
        Account.is_default.is_(True),
        Account.outgoing_active.is_(True),
        Account.deactivated_at.is_(None),
    ]


def account_for_user(session: Session, user_id: int) -> Account | None:
    personal = session.scalar(
        select(Account).where(
            Account.role == "personal", Account.owner_user_id == user_id, *_usable()
        )
    )
    if personal is not None:
        return personal
    teams = team_ids_of(session, user_id)
    if teams:
        team = session.scalar(
            select(Account)
            .where(Account.role == "team", Account.owner_team_id.in_(teams), *_usable())
            .order_by(Account.owner_team_id)  # the user's first team decides, predictably
        )
        if team is not None:
            return team
    return company_account(session, "global")


def company_account(session: Session, role: str, company_id: int | None = None) -> Account | None:
    """The current ``global`` or ``system`` account of the company (a scoped session's own;
    otherwise the one named, else the default company)."""
    owner = owning_company(session, company_id)
    return session.scalar(
        select(Account).where(Account.role == role, Account.company_id == owner, *_usable())
    )


def sendable_accounts(session: Session, user_id: int) -> list[Account]:
    """Every account the user may send as (the reply form's picker), their default first:
    their personal accounts, their teams' accounts and the company's global account."""
    teams = team_ids_of(session, user_id)
    query = select(Account).where(
        Account.outgoing_active.is_(True),
        Account.deactivated_at.is_(None),
        or_(
            (Account.role == "personal") & (Account.owner_user_id == user_id),
            (Account.role == "team") & Account.owner_team_id.in_(teams),
            (Account.role == "global") & Account.is_default.is_(True),
        ),
    )
    found = list(session.scalars(query.order_by(Account.id)))
    default = account_for_user(session, user_id)
    return sorted(found, key=lambda a: (default is None or a.id != default.id, a.id))


def system_account(session: Session) -> Account | None:
    return company_account(session, "system")
