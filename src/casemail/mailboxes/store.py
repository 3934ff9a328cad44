"""Store first, then remember: every fetched message goes through ``ingest_raw`` (which
commits the raw bytes) before the mailbox bookkeeping records it, and only after both may
a server be told anything (a flag, a move, an expunge, a DELE).

If the process dies between the two commits, the message is fetched again on the next run
and ``ingest_raw`` recognises it by Message-ID and content hash: nothing is stored twice.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from casemail.db.engine import Database
from casemail.db.models import MailboxFolder, MailboxItem
from casemail.db.types import utcnow
from casemail.db.upsert import insert_ignore
from casemail.ingest import IngestOptions, IngestResult, Source, ingest_raw
from casemail.ingest.batch import ingest_batch
from casemail.ingest.receipt import Receipt


@dataclass(frozen=True)
class FolderState:
    uidvalidity: int | None
    last_uid: int
    messages_done: int = 0  # stored under this UIDVALIDITY, for progress (done / total)


def folder_state(db: Database, account_id: int, folder: str) -> FolderState:
    with db.write() as session:
        row = _folder(session, account_id, folder)
        return FolderState(row.uidvalidity, row.last_uid, row.messages_done)


def start_uidvalidity(db: Database, account_id: int, folder: str, uidvalidity: int) -> bool:
    """Record the folder's UIDVALIDITY. A changed one (RFC 3501 section 2.3.1.1: the old
    UIDs mean nothing now) restarts the folder from UID 0; returns True when it changed.
    Messages already stored are recognised by content when fetched again."""
    with db.write() as session:
        row = _folder(session, account_id, folder)
        changed = row.uidvalidity is not None and row.uidvalidity != uidvalidity
        if changed or row.uidvalidity is None:
            row.uidvalidity = uidvalidity
            row.last_uid = 0
            row.messages_done = 0
        return changed


def set_progress(db: Database, account_id: int, folder: str, *, total: int) -> None:
    with db.write() as session:
        row = _folder(session, account_id, folder)
        row.messages_total = total
        row.last_sync_at = utcnow()


def known_uids(
    db: Database, account_id: int, folder: str, uidvalidity: int, uids: list[int]
) -> set[int]:
    """The UIDs among ``uids`` already stored under this UIDVALIDITY."""
    if not uids:
        return set()
    with db.read() as session:
        query = select(MailboxItem.uid).where(
            MailboxItem.account_id == account_id,
            MailboxItem.folder == folder,
            MailboxItem.uidvalidity == uidvalidity,
            MailboxItem.uid.in_(uids),
        )
        return {int(u) for u in session.scalars(query) if u is not None}


def known_uidls(db: Database, account_id: int, uidls: list[str]) -> set[str]:
    if not uidls:
        return set()
    with db.read() as session:
        query = select(MailboxItem.uidl).where(
            MailboxItem.account_id == account_id, MailboxItem.uidl.in_(uidls)
        )
        return {u for u in session.scalars(query) if u is not None}


@dataclass(frozen=True)
class Fetched:
    """Where one message came from on the server."""

    account_id: int
    folder: str
    uidvalidity: int | None = None
    uid: int | None = None
    uidl: str | None = None


def store_fetched(
    db: Database, channel_id: int, fetched: Fetched, raw: bytes, options: IngestOptions
) -> IngestResult:
    """Ingest (commit) the raw message, then record it and advance the folder's high-water
    mark in one transaction. Safe to repeat for the same message."""
    result = ingest_raw(db, channel_id, raw, _source(fetched), options=options)
    with db.write() as session:
        _remember(session, fetched, result.inbound_id)
    return result


def _conflict(fetched: Fetched) -> list[str]:
    if fetched.uid is not None:
        return ["account_id", "folder", "uidvalidity", "uid"]
    return ["account_id", "uidl"]


def _advance(session: Session, fetched: Fetched) -> None:
    """last_uid only grows, and only under the UIDVALIDITY the message was fetched with."""
    assert fetched.uid is not None
    session.execute(
        update(MailboxFolder)
        .where(
            MailboxFolder.account_id == fetched.account_id,
            MailboxFolder.folder == fetched.folder,
            MailboxFolder.uidvalidity == fetched.uidvalidity,
        )
        .values(
            last_uid=func.max(MailboxFolder.last_uid, fetched.uid)
            if session.get_bind().dialect.name == "sqlite"
            else func.greatest(MailboxFolder.last_uid, fetched.uid),
            messages_done=MailboxFolder.messages_done + 1,
        )
    )


def _count_done(session: Session, fetched: Fetched) -> None:
    session.execute(
        update(MailboxFolder)
        .where(
            MailboxFolder.account_id == fetched.account_id,
            MailboxFolder.folder == fetched.folder,
        )
        .values(messages_done=MailboxFolder.messages_done + 1)
    )


def mark_removed(db: Database, account_id: int, uidls: list[str]) -> None:
    """POP3: the server was told DELE for these and the session ended with QUIT."""
    with db.write() as session:
        session.execute(
            update(MailboxItem)
            .where(MailboxItem.account_id == account_id, MailboxItem.uidl.in_(uidls))
            .values(removed_from_server_at=utcnow())
        )


def _folder(session: Session, account_id: int, folder: str) -> MailboxFolder:
    insert_ignore(
        session,
        MailboxFolder.__table__,  # type: ignore[arg-type]
        conflict=["account_id", "folder"],
        returning=MailboxFolder.id,
        values={
            "account_id": account_id,
            "folder": folder,
            "last_uid": 0,
            "messages_done": 0,
            "created_at": utcnow(),
        },
    )
    row = session.scalar(
        select(MailboxFolder).where(
            MailboxFolder.account_id == account_id, MailboxFolder.folder == folder
        )
    )
    assert row is not None
    return row


def store_fetched_batch(
    db: Database, channel_id: int, batch: list[tuple[Fetched, bytes]], options: IngestOptions
) -> list[IngestResult]:
    """``store_fetched`` for a batch: the raw messages, their receipts and the mailbox
    bookkeeping commit together, before any of them is processed (see ingest.batch)."""
    if not batch:
        return []

    def remember(session: Session, receipts: list[Receipt]) -> None:
        for (fetched, _), receipt in zip(batch, receipts, strict=True):
            _remember(session, fetched, receipt.inbound_id)

    items = [(raw, _source(fetched)) for fetched, raw in batch]
    return ingest_batch(db, channel_id, items, options=options, on_stored=remember)


def _source(fetched: Fetched) -> Source:
    return Source("imap") if fetched.uid is not None else Source("pop3")


def _remember(session: Session, fetched: Fetched, inbound_id: int) -> None:
    insert_ignore(
        session,
        MailboxItem.__table__,  # type: ignore[arg-type]
        conflict=_conflict(fetched),
        returning=MailboxItem.id,
        values={
            "account_id": fetched.account_id,
            "folder": fetched.folder,
            "uidvalidity": fetched.uidvalidity,
            "uid": fetched.uid,
            "uidl": fetched.uidl,
            "inbound_id": inbound_id,
            "fetched_at": utcnow(),
        },
    )
    if fetched.uid is not None:
        _advance(session, fetched)
    else:
        _count_done(session, fetched)
