"""Helpers for the IMAP sync tests: an account and a channel fetching from a Dovecot user,
the job that syncs it, the exact counts the fault tests compare, and a database on which
processing one message always fails."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import func, select

from casemail.accounts.endpoint import Endpoint, Security
from casemail.channels.service import add_channel
from casemail.db import Database
from casemail.db.models import Account, InboundReceipt, MailboxItem, Message, QuarantineEntry
from casemail.ingest import IngestOptions
from casemail.mailboxes.job import MailboxJob
from tests.mailservers import Dovecot, MailUser
from tests.support import FailingMessageWrites, subject_says


def imap_job(
    db: Database,
    dovecot: Dovecot,
    user: MailUser,
    *,
    port: int | None = None,
    security: Security = "tls",
    folders: tuple[str, ...] = ("INBOX",),
    options: IngestOptions | None = None,
    read_timeout: float = 10,
    **job: Any,
) -> MailboxJob:
    """An account and a channel in the database, and the job that fetches for them."""
    port = port or (dovecot.ports.imaps if security == "tls" else dovecot.ports.imap)
    with db.write() as session:
        account = Account(
            company_id=1,
            role="global",
            name=f"Mailbox {user.address}",
            email=user.address,
            incoming_active=True,
            settings={"incoming": {"protocol": "imap", "host": "127.0.0.1", "port": port}},
        )
        session.add(account)
        session.flush()
        channel = add_channel(
            session, address=f"in-{account.id}@example.com", account_id=account.id
        )
        account_id, channel_id = account.id, channel.id
    endpoint = Endpoint(
        protocol="imap",
        host="127.0.0.1",
        port=port,
        security=security,
        username=user.address,
        secret=user.password,
        ca_file=dovecot.ca_file,
        connect_timeout=5,
        read_timeout=read_timeout,
        folders=folders,
    )
    return MailboxJob(
        db=db,
        account_id=account_id,
        channel_id=channel_id,
        endpoint=endpoint,
        options=options or IngestOptions(),
        **job,
    )


@dataclass(frozen=True)
class Counts:
    receipts: int  # raw messages stored
    history: int  # inbound messages on a case's email history
    quarantined: int
    items: int  # mailbox bookkeeping rows (one per fetched server message)
    distinct_message_ids: int  # among the history entries

    @property
    def accounted(self) -> int:
        return self.history + self.quarantined


def counts(db: Database) -> Counts:
    def count(query: Any) -> int:
        return int(session.scalar(query) or 0)

    with db.read() as session:
        return Counts(
            receipts=count(select(func.count()).select_from(InboundReceipt)),
            history=count(
                select(func.count()).select_from(Message).where(Message.direction == "inbound")
            ),
            quarantined=count(select(func.count()).select_from(QuarantineEntry)),
            items=count(select(func.count()).select_from(MailboxItem)),
            distinct_message_ids=count(select(func.count(func.distinct(Message.message_id)))),
        )


def flags(dovecot: Dovecot, user: MailUser, folder: str = "INBOX") -> dict[int, set[bytes]]:
    """Each message's flags, read by another client (EXAMINE: reading changes nothing)."""
    with dovecot.imap(user) as client:
        client.select_folder(folder, readonly=True)
        found = client.fetch(client.search("ALL"), ["FLAGS"])
        return {uid: set(data[b"FLAGS"]) for uid, data in found.items()}


class PoisonWrites(FailingMessageWrites):
    """Every write that would put a message whose subject says "poison" on a case fails: a
    message whose processing always crashes, while everything else works."""

    error = "simulated crash while storing the case message"

    def __init__(self, db: Database) -> None:
        super().__init__(db, subject_says("poison"), error=self.error)


def mailbox_account_doc(user: MailUser, *, port: int, **incoming: Any) -> dict[str, Any]:
    """The account document (as POST /api/v1/accounts takes it) of an IMAP mailbox on the
    Dovecot fixture, polled every 5 s; ``incoming`` overrides its incoming settings."""
    return {
        "role": "global",
        "name": f"Mailbox {user.address}",
        "email": user.address,
        "incoming": {
            "protocol": "imap",
            "host": "127.0.0.1",
            "port": port,
            "security": "tls",
            "password": user.password,
            "connect_timeout": 5,
            "read_timeout": 10,
            "poll_interval_seconds": 5,
            **incoming,
        },
    }
