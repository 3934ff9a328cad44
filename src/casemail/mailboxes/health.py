"""Per-account inbound health, for the API and the CLI."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel
from sqlalchemy import func, select

from casemail.db.engine import Database
from casemail.db.models import Account, Channel, InboundReceipt, MailboxFolder


class FolderHealth(BaseModel):
    folder: str
    uidvalidity: int | None
    last_uid: int
    messages_total: int | None
    messages_done: int
    last_sync_at: datetime | None


class AccountHealth(BaseModel):
    account_id: int
    state: str
    last_success_at: datetime | None
    last_error: str | None
    last_error_at: datetime | None
    failures: int
    next_sync_at: datetime | None
    channel_id: int | None
    messages_waiting: int  # stored but not yet on a case or in quarantine
    folders: list[FolderHealth]


def account_health(db: Database, account_id: int) -> AccountHealth | None:
    with db.read() as session:
        account = session.get(Account, account_id)
        if account is None:
            return None
        channel_id = session.scalar(select(Channel.id).where(Channel.account_id == account_id))
        waiting = 0
        if channel_id is not None:
            waiting = (
                session.scalar(
                    select(func.count())
                    .select_from(InboundReceipt)
                    .where(
                        InboundReceipt.channel_id == channel_id,
                        InboundReceipt.state.in_(("received", "processing")),
                    )
                )
                or 0
            )
        folders = session.scalars(
            select(MailboxFolder)
            .where(MailboxFolder.account_id == account_id)
            .order_by(MailboxFolder.folder)
        )
        return AccountHealth(
            account_id=account_id,
            state=account.sync_state,
            last_success_at=account.last_sync_ok_at,
            last_error=account.last_sync_error,
            last_error_at=account.last_sync_error_at,
            failures=account.sync_failures,
            next_sync_at=account.next_sync_at,
            channel_id=channel_id,
            messages_waiting=int(waiting),
            folders=[FolderHealth.model_validate(f, from_attributes=True) for f in folders],
        )
