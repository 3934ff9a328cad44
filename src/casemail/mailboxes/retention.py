"""POP3 retention: when casemail removes a stored message from the server, and the warning an
admin sees when that leaves no copy there.

The settings follow the usual mail client's: "leave a copy on the server" (``leave_on_server``),
and while it is on, "remove from the server after N days" (``delete_after_days``). Without a
copy on the server the message is removed right after it is stored, so casemail holds the only
copy (seed 003 warns about exactly this). With ``delete_when_deleted`` (and the copy left
on the server), a message is removed once the case it is on is deleted in casemail, so the
mailbox follows what the team cleans up. Only messages already stored are ever removed: never
one the initial import left alone, never one casemail holds no copy of.
"""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import select

from casemail.db.engine import Database
from casemail.db.models import Case, MailboxItem, Message
from casemail.db.types import utcnow

CHUNK = 500  # identifiers per IN (...) query: well below SQLite's and PostgreSQL's limits


def removal_warning(
    leave_on_server: bool, delete_after_days: int | None, *, delete_when_deleted: bool = False
) -> str | None:
    """The warning for settings that remove mail from the server at once, else None.
    ``delete_after_days`` and ``delete_when_deleted`` only count while ``leave_on_server``
    is on."""
    if leave_on_server:
        return None
    warning = (
        "mail is removed from the server as soon as casemail has stored it: no copy stays "
        "in the mailbox; turn on leave_on_server (with delete_after_days to keep a copy for "
        "a while)"
    )
    if delete_after_days:
        warning += f"; delete_after_days ({delete_after_days}) applies only with leave_on_server"
    if delete_when_deleted:
        warning += "; delete_when_deleted applies only with leave_on_server"
    return warning


def expired_uidls(db: Database, account_id: int, uidls: list[str], *, days: int | None) -> set[str]:
    """The stored messages among ``uidls`` fetched more than ``days`` days ago."""
    if days is None:
        return set()
    cutoff = utcnow() - timedelta(days=days)
    found: set[str] = set()
    with db.read() as session:
        for chunk in chunks(uidls):
            query = select(MailboxItem.uidl).where(
                MailboxItem.account_id == account_id,
                MailboxItem.uidl.in_(chunk),
                MailboxItem.inbound_id.is_not(None),  # stored, not only marked
                MailboxItem.fetched_at < cutoff,
            )
            found.update(u for u in session.scalars(query) if u is not None)
    return found


def deleted_case_uidls(db: Database, account_id: int, uidls: list[str]) -> set[str]:
    """The stored messages among ``uidls`` whose case was deleted in casemail: item ->
    receipt -> message on a case's email history -> case. A message in quarantine, or
    waiting to be processed, is on no case and never counts."""
    found: set[str] = set()
    with db.read() as session:
        for chunk in chunks(uidls):
            query = (
                select(MailboxItem.uidl)
                .join(Message, Message.inbound_id == MailboxItem.inbound_id)
                .join(Case, Case.id == Message.case_id)
                .where(
                    MailboxItem.account_id == account_id,
                    MailboxItem.uidl.in_(chunk),
                    Case.deleted_at.is_not(None),
                )
            )
            found.update(u for u in session.scalars(query) if u is not None)
    return found


def chunks(items: list[str]) -> list[list[str]]:
    """``items`` in slices of at most CHUNK, for queries with an IN (...) list."""
    return [items[start : start + CHUNK] for start in range(0, len(items), CHUNK)]
