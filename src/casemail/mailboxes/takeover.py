"""One account takes over another's mailbox: the switch from password to OAuth2 (seed 002)
without fetching anything twice or missing anything.

The new account signs in to the same mailbox another way; what was fetched is the same
mailbox's state. So the old account's sync bookkeeping (per folder: UIDVALIDITY, highest
UID committed, initial-import decision; per message: the UID or UIDL records) is copied
onto the new account, its channels move over, and the old account stops fetching, all in
one transaction. The new account's first sync continues after the old one's last commit.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import func, insert, literal, select, update
from sqlalchemy.orm import Session

from casemail.accounts.rules import AccountError
from casemail.db.models import Account, Channel, MailboxFolder, MailboxItem
from casemail.db.types import utcnow


@dataclass(frozen=True)
class TakeOver:
    folders: int
    items: int
    channels: int


def take_over_mailbox(session: Session, new: Account, old: Account) -> TakeOver:
    _check_same_mailbox(new, old)
    if _has_bookkeeping(session, new.id):
        raise AccountError(
            f"account #{new.id} has fetched from its mailbox already: a take-over would mix "
            "two records of the same mailbox; reset its counter first or add a new account",
            status=409,
        )
    folders = _copy(session, MailboxFolder, old.id, new.id)
    items = _copy(session, MailboxItem, old.id, new.id)
    moved = session.execute(
        update(Channel).where(Channel.account_id == old.id).values(account_id=new.id)
    )
    # The old account stops fetching now; it may still send until the new one is the default.
    old.incoming_active = False
    old.updated_at = new.updated_at = utcnow()
    new.next_sync_at = utcnow()
    session.flush()
    return TakeOver(folders, items, int(getattr(moved, "rowcount", 0) or 0))


def _check_same_mailbox(new: Account, old: Account) -> None:
    if new.id == old.id:
        raise AccountError("an account cannot take over its own mailbox", status=409)
    if new.deactivated_at is not None:
        raise AccountError(f"account #{new.id} is deactivated", status=409)
    mine, theirs = _mailbox(new), _mailbox(old)
    if mine is None or theirs is None:
        raise AccountError("both accounts need an incoming server", field="incoming", status=409)
    if mine != theirs:
        raise AccountError(
            f"account #{new.id} reads {_words(mine)}, account #{old.id} reads {_words(theirs)}: "
            "a take-over needs the same mailbox (protocol, server and login)",
            status=409,
        )


def _mailbox(account: Account) -> tuple[str, str, str] | None:
    incoming: dict[str, Any] | None = account.settings.get("incoming")
    if not incoming:
        return None
    login = str(incoming.get("username") or account.email)
    return (str(incoming["protocol"]), str(incoming["host"]).lower().rstrip("."), login.lower())


def _words(mailbox: tuple[str, str, str]) -> str:
    protocol, host, login = mailbox
    return f"{login} by {protocol.upper()} at {host}"


def _has_bookkeeping(session: Session, account_id: int) -> bool:
    for model in (MailboxFolder, MailboxItem):
        query = select(func.count()).select_from(model).where(model.account_id == account_id)
        if session.scalar(query):
            return True
    return False


def _copy(
    session: Session,
    model: type[MailboxFolder] | type[MailboxItem],
    old_id: int,
    new_id: int,
) -> int:
    """INSERT … SELECT of the old account's rows with the new account id (ids fresh)."""
    columns = [c for c in model.__table__.columns if c.name not in ("id", "account_id")]
    source = select(literal(new_id), *columns).where(model.__table__.c.account_id == old_id)
    names = ["account_id", *(c.name for c in columns)]
    # Counted first: drivers report no reliable rowcount for INSERT … SELECT.
    count = session.scalar(select(func.count()).select_from(source.subquery()))
    session.execute(insert(model).from_select(names, source))
    return int(count or 0)
