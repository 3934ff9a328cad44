"""Company isolation: a session scoped to a company sees only that company's rows.

Every request of a user (API token or web sign-in) runs on a scoped session. Scoping is
done once, here, for every ORM statement the session runs (SELECT, and bulk UPDATE and
DELETE): each company-owned entity gets its ``WHERE`` criterion through
``with_loader_criteria`` (SQLAlchemy's "global WHERE criteria" recipe), so a route that
forgets to filter by company still cannot read or change another company's rows. Routes
filter explicitly as well; this is the backstop, and the cross-company tests try every
route against it.

Rows that carry no company of their own are scoped through what owns them: messages,
receipts and quarantine entries through their channel, outbox entries through their
account or case, mailbox bookkeeping through its account. The subqueries read the tables
directly (Core), so scoping never recurses into itself.

Workers and the CLI act for the installation and use unscoped sessions.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import event, or_, select
from sqlalchemy.orm import ORMExecuteState, Session, with_loader_criteria

from casemail.db.models import (
    Account,
    ApiToken,
    Attachment,
    Case,
    Channel,
    Company,
    Contact,
    InboundReceipt,
    MailboxFolder,
    MailboxItem,
    Message,
    OAuthClient,
    OAuthFlow,
    OutboxEntry,
    QuarantineEntry,
    Team,
    TeamMember,
    User,
    Webhook,
    WebhookDelivery,
)

COMPANY_KEY = "casemail_company_id"
# The company a new installation starts with; the CLI and the workers act for it by
# default, and its admins are the installation's operators.
DEFAULT_COMPANY_ID = 1


def scope_to_company(session: Session, company_id: int) -> Session:
    """From now on, ``session`` sees and changes only rows of ``company_id``."""
    session.info[COMPANY_KEY] = company_id
    return session


def company_of(session: Session) -> int | None:
    value = session.info.get(COMPANY_KEY)
    return value if isinstance(value, int) else None


def owning_company(session: Session, requested: int | None = None) -> int:
    """The company a new row belongs to: a scoped session's own, whatever was asked for;
    otherwise (CLI, workers) the one asked for, else the default company."""
    return company_of(session) or requested or DEFAULT_COMPANY_ID


def _ids(table: Any, company_id: int) -> Any:
    return select(table.c.id).where(table.c.company_id == company_id)


def _criteria(company_id: int) -> list[Any]:
    channels = _ids(Channel.__table__, company_id)
    accounts = _ids(Account.__table__, company_id)
    cases = _ids(Case.__table__, company_id)
    users = _ids(User.__table__, company_id)
    teams = _ids(Team.__table__, company_id)
    clients = select(OAuthClient.__table__.c.id).where(
        or_(
            OAuthClient.__table__.c.company_id == company_id,
            OAuthClient.__table__.c.company_id.is_(None),
        )
    )
    hooks = _ids(Webhook.__table__, company_id)
    message_table = Message.__table__
    messages = select(message_table.c.id).where(message_table.c.channel_id.in_(channels))
    owned = [
        (Company, Company.id == company_id),
        (Channel, Channel.company_id == company_id),
        (Contact, Contact.company_id == company_id),
        (Case, Case.company_id == company_id),
        (Team, Team.company_id == company_id),
        (User, User.company_id == company_id),
        (Account, Account.company_id == company_id),
        # Installation-wide app registrations (no company) are visible to every company;
        # the API lets a company change only its own.
        (OAuthClient, or_(OAuthClient.company_id == company_id, OAuthClient.company_id.is_(None))),
        (OAuthFlow, OAuthFlow.client_id.in_(clients)),
        (Message, Message.channel_id.in_(channels)),
        (InboundReceipt, InboundReceipt.channel_id.in_(channels)),
        (QuarantineEntry, QuarantineEntry.channel_id.in_(channels)),
        (Attachment, Attachment.message_pk.in_(messages)),
        (
            OutboxEntry,
            or_(
                OutboxEntry.company_id == company_id,
                OutboxEntry.company_id.is_(None)
                & or_(OutboxEntry.account_id.in_(accounts), OutboxEntry.case_id.in_(cases)),
            ),
        ),
        (MailboxFolder, MailboxFolder.account_id.in_(accounts)),
        (MailboxItem, MailboxItem.account_id.in_(accounts)),
        (TeamMember, TeamMember.team_id.in_(teams)),
        (ApiToken, ApiToken.user_id.in_(users)),
        (Webhook, Webhook.company_id == company_id),
        (WebhookDelivery, WebhookDelivery.webhook_id.in_(hooks)),
    ]
    return [
        with_loader_criteria(entity, criterion, include_aliases=True) for entity, criterion in owned
    ]


@event.listens_for(Session, "do_orm_execute")
def _scope_statement(state: ORMExecuteState) -> None:
    company_id = company_of(state.session)
    if company_id is None:
        return
    if state.is_select or state.is_update or state.is_delete:
        state.statement = state.statement.options(*_criteria(company_id))
