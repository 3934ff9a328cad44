"""Store first, then remember: every fetched message goes through ``ingest_raw`` (which
commits the raw bytes) before the mailbox bookkeeping records it, and only after both may
a server be told anything (a flag, a move, an expunge, a DELE).

If the process dies between the two commits, the message is fetched again on the next run
and ``ingest_raw`` recognises it by Message-ID and content hash: nothing is stored twice.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from casemail.db.engine import Database
from casemail.db.models import MailboxFolder, MailboxItem
from casemail.db.types import utcnow
from casemail.db.upsert import insert_ignore, insert_ignore_returning
from casemail.ingest import IngestOptions, IngestResult, Source, ingest_raw
from casemail.ingest.batch import ingest_batch
from casemail.ingest.receipt import Receipt
from casemail.mailboxes.fence import Fence, check_fence
from casemail.mailboxes.initial_import import first_sync_imap
from casemail.mailboxes.job import InitialImport


@dataclass(frozen=True)
class FolderState:
    uidvalidity: int | None
    last_uid: int
    messages_done: int = 0  # stored under this UIDVALIDITY, for progress (done / total)
    import_until_uid: int | None = None  # see MailboxFolder; None: first sync still to come


def folder_state(db: Database, account_id: int, folder: str) -> FolderState:
    with db.write() as session:
        row = folder_row(session, account_id, folder)
        return FolderState(row.uidvalidity, row.last_uid, row.messages_done, row.import_until_uid)


@dataclass(frozen=True)
class FolderStart:
    changed: bool  # a new UIDVALIDITY: the folder is read again from UID 0
    decided: InitialImport | None  # this was the folder's first sync, imported so


def start_uidvalidity(
    db: Database,
    account_id: int,
    folder: str,
    uidvalidity: int,
    *,
    initial: InitialImport = "all",
    existing_until: int = 0,
    fence: Fence | None = None,
) -> FolderStart:
    """Record the folder's UIDVALIDITY. A changed one (RFC 3501 section 2.3.1.1: the old
    UIDs mean nothing now) restarts the folder from UID 0, as normal mail: messages already
    stored are recognised by content when fetched again. At the folder's first sync this
    also decides its initial import (see ``initial_import``), in the same transaction."""
    with db.write() as session:
        check_fence(session, fence)
        row = folder_row(session, account_id, folder)
        changed = row.uidvalidity is not None and row.uidvalidity != uidvalidity
        if changed or row.uidvalidity is None:
            row.uidvalidity = uidvalidity
            row.last_uid = 0
            row.messages_done = 0
            if changed and row.import_until_uid:
                row.import_until_uid = 0  # the archive mark counted the old UIDs
        if row.import_until_uid is not None:
            return FolderStart(changed, None)
        first_sync_imap(row, initial, existing_until)
        return FolderStart(changed, initial)


def set_progress(db: Database, account_id: int, folder: str, *, total: int) -> None:
    with db.write() as session:
        row = folder_row(session, account_id, folder)
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


@dataclass(frozen=True)
class Fetched:
    """Where one message came from on the server."""

    account_id: int
    folder: str
    uidvalidity: int | None = None
    uid: int | None = None
    uidl: str | None = None
    archive: bool = False  # there before the first sync of an "archive" initial import


def store_fetched(
    db: Database,
    channel_id: int,
    fetched: Fetched,
    raw: bytes,
    options: IngestOptions,
    *,
    fence: Fence | None = None,
) -> IngestResult:
    """Ingest (commit) the raw message, then record it and advance the folder's high-water
    mark in one transaction. Safe to repeat for the same message. A writer whose lease is
    gone (``fence``) may have stored the message (the new owner's copy is then recognised
    as the same), but records nothing, so it tells the server nothing either."""
    result = ingest_raw(db, channel_id, raw, _source(fetched), options=options)
    with db.write() as session:
        check_fence(session, fence)
        _remember(session, fetched, result.inbound_id)
    return result


def _conflict(fetched: Fetched) -> list[str]:
    if fetched.uid is not None:
        return ["account_id", "folder", "uidvalidity", "uid"]
    return ["account_id", "uidl"]


def _count_done(session: Session, fetched: Fetched) -> None:
    session.execute(
        update(MailboxFolder)
        .where(
            MailboxFolder.account_id == fetched.account_id,
            MailboxFolder.folder == fetched.folder,
        )
        .values(messages_done=MailboxFolder.messages_done + 1)
    )


def folder_row(session: Session, account_id: int, folder: str) -> MailboxFolder:
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
    db: Database,
    channel_id: int,
    batch: list[tuple[Fetched, bytes]],
    options: IngestOptions,
    *,
    fence: Fence | None = None,
) -> list[IngestResult]:
    """``store_fetched`` for a batch: the raw messages, their receipts and the mailbox
    bookkeeping commit together, before any of them is processed (see ingest.batch); under
    a lost lease (``fence``) none of them."""
    if not batch:
        return []

    def remember(session: Session, receipts: list[Receipt]) -> None:
        check_fence(session, fence)
        pairs = zip(batch, receipts, strict=True)
        _remember_all(session, [(fetched, receipt.inbound_id) for (fetched, _), receipt in pairs])

    items = [(raw, _source(fetched)) for fetched, raw in batch]
    return ingest_batch(db, channel_id, items, options=options, on_stored=remember)


def _source(fetched: Fetched) -> Source:
    return Source("imap" if fetched.uid is not None else "pop3", archive=fetched.archive)


def _remember(session: Session, fetched: Fetched, inbound_id: int) -> None:
    _remember_all(session, [(fetched, inbound_id)])


def _remember_all(session: Session, stored: list[tuple[Fetched, int]]) -> None:
    """Record where each stored message came from; IMAP ones with one INSERT per batch."""
    imap = [(f, i) for f, i in stored if f.uid is not None]
    for fetched, inbound_id in stored:
        if fetched.uid is None:
            _remember_pop3(session, fetched, inbound_id)
    for key in dict.fromkeys((f.account_id, f.folder, f.uidvalidity) for f, _ in imap):
        _remember_imap(
            session, [(f, i) for f, i in imap if (f.account_id, f.folder, f.uidvalidity) == key]
        )


def _item_row(fetched: Fetched, inbound_id: int, now: datetime) -> dict[str, object]:
    return {
        "account_id": fetched.account_id,
        "folder": fetched.folder,
        "uidvalidity": fetched.uidvalidity,
        "uid": fetched.uid,
        "uidl": fetched.uidl,
        "inbound_id": inbound_id,
        "fetched_at": now,
    }


def _remember_imap(session: Session, stored: list[tuple[Fetched, int]]) -> None:
    """Messages of one folder under one UIDVALIDITY: record them, then move the high-water
    mark and count only those newly recorded (a UID seen before is not counted twice)."""
    now = utcnow()
    new = insert_ignore_returning(
        session,
        MailboxItem.__table__,  # type: ignore[arg-type]
        conflict=_conflict(stored[0][0]),
        rows=[_item_row(f, i, now) for f, i in stored],
        returning=(MailboxItem.uid,),
    )
    first = stored[0][0]
    highest = max(f.uid or 0 for f, _ in stored)
    greatest = func.max if session.get_bind().dialect.name == "sqlite" else func.greatest
    session.execute(
        update(MailboxFolder)
        .where(
            MailboxFolder.account_id == first.account_id,
            MailboxFolder.folder == first.folder,
            MailboxFolder.uidvalidity == first.uidvalidity,
        )
        .values(
            last_uid=greatest(MailboxFolder.last_uid, highest),
            messages_done=MailboxFolder.messages_done + len(new),
        )
    )


def _remember_pop3(session: Session, fetched: Fetched, inbound_id: int) -> None:
    # A POP3 message the initial import marked (archive) has its row already.
    session.execute(
        update(MailboxItem)
        .where(
            MailboxItem.account_id == fetched.account_id,
            MailboxItem.uidl == fetched.uidl,
            MailboxItem.inbound_id.is_(None),
        )
        .values(inbound_id=inbound_id, fetched_at=utcnow())
    )
    insert_ignore(
        session,
        MailboxItem.__table__,  # type: ignore[arg-type]
        conflict=_conflict(fetched),
        returning=MailboxItem.id,
        values=_item_row(fetched, inbound_id, utcnow()),
    )
    _count_done(session, fetched)
