"""POP3 bookkeeping on ``mailbox_items``, by UIDL: which messages are stored, which the
initial import left alone or has still to store as archive, and which the server removed.
"""

from __future__ import annotations

from typing import Literal

from sqlalchemy import select, update

from casemail.db.engine import Database
from casemail.db.models import MailboxItem
from casemail.db.types import utcnow
from casemail.db.upsert import insert_ignore_many
from casemail.mailboxes.initial_import import IMPORT_AS
from casemail.mailboxes.job import InitialImport
from casemail.mailboxes.retention import chunks
from casemail.mailboxes.store import folder_row

# stored: fetched and committed; skip: left alone by a "from_now" initial import (never
# fetched); archive: on the server at an "archive" initial import, not stored yet.
ItemState = Literal["stored", "skip", "archive"]


def uidl_states(db: Database, account_id: int, uidls: list[str]) -> dict[str, ItemState]:
    """The state of every UIDL among ``uidls`` that has a row; the others are new."""
    if not uidls:
        return {}
    with db.read() as session:
        rows = session.execute(
            select(MailboxItem.uidl, MailboxItem.inbound_id, MailboxItem.import_as).where(
                MailboxItem.account_id == account_id, MailboxItem.uidl.in_(uidls)
            )
        )
        return {
            uidl: _state(inbound_id, import_as)
            for uidl, inbound_id, import_as in rows
            if uidl is not None
        }


def _state(inbound_id: int | None, import_as: str | None) -> ItemState:
    if inbound_id is not None:
        return "stored"
    return "archive" if import_as == "archive" else "skip"


def mark_existing(
    db: Database,
    account_id: int,
    folder: str,
    uidls: list[str],
    mode: InitialImport,
    *,
    decided: bool,
) -> int:
    """Mark messages that were on the server at the first sync (nothing to mark for
    ``all``) and, when ``decided``, record that the first sync has decided: one
    transaction, so a run that breaks off leaves all of it or none. Returns how many
    messages were marked (a message stored already keeps its row as it is)."""
    import_as = IMPORT_AS.get(mode)
    marked = 0
    with db.write() as session:
        if import_as is not None:
            for chunk in chunks(uidls):
                rows = [_mark(account_id, folder, uidl, import_as) for uidl in chunk]
                marked += insert_ignore_many(
                    session,
                    MailboxItem.__table__,  # type: ignore[arg-type]
                    conflict=["account_id", "uidl"],
                    rows=rows,
                )
        if decided:
            folder_row(session, account_id, folder).import_until_uid = 0
    return marked


def _mark(account_id: int, folder: str, uidl: str, import_as: str) -> dict[str, object]:
    return {
        "account_id": account_id,
        "folder": folder,
        "uidl": uidl,
        "inbound_id": None,
        "import_as": import_as,
        "fetched_at": utcnow(),
    }


def mark_removed(db: Database, account_id: int, uidls: list[str]) -> None:
    """The server was told DELE for these and the session ended with QUIT."""
    with db.write() as session:
        session.execute(
            update(MailboxItem)
            .where(MailboxItem.account_id == account_id, MailboxItem.uidl.in_(uidls))
            .values(removed_from_server_at=utcnow())
        )
