"""Each mailbox is fetched by one worker process: the owner of its lease.

Ownership follows rendezvous hashing (highest random weight) over the live workers: each
(worker, mailbox) pair gets a score, and the live worker with the highest score for a
mailbox is where it belongs. When a worker joins, only the mailboxes it now wins move to it;
when one leaves, only its mailboxes move, spread over the rest.

A lease lasts ``LEASE`` and is renewed at every pass (about once a second). It is taken by
the preferred worker when it is free or has expired; a holder that is no longer the
preferred one hands it back (its watcher stops), so the preferred one takes it at its next
pass. A killed worker's leases expire and are taken within ``LEASE``. Times are the
database's own on PostgreSQL (``now()``), so the hosts' clocks need not agree.

``fencing_token`` grows each time a mailbox changes hands; every write the owner makes for
the mailbox checks it (``mailboxes.fence``), so a worker that lost its lease writes nothing.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from datetime import datetime, timedelta

from sqlalchemy import delete, select, update
from sqlalchemy.orm import Session

from casemail.db.engine import Database
from casemail.db.models import Account, MailboxLease, WorkerProcess
from casemail.db.types import database_now
from casemail.db.upsert import insert_ignore
from casemail.workers.registry import DEAD_AFTER

LEASE = timedelta(seconds=30)


def score(worker_id: str, account_id: int) -> bytes:
    return hashlib.sha256(f"{worker_id}/{account_id}".encode()).digest()


def preferred(account_id: int, workers: Iterable[str]) -> str | None:
    return max(workers, key=lambda worker_id: score(worker_id, account_id), default=None)


def live_workers(session: Session, now: datetime) -> list[str]:
    query = select(WorkerProcess.id).where(
        WorkerProcess.stopped_at.is_(None), WorkerProcess.heartbeat_at >= now - DEAD_AFTER
    )
    return list(session.scalars(query))


def balance(db: Database, worker_id: str, wanted: Iterable[int]) -> dict[int, int]:
    """Renew, take or hand back the leases of ``wanted`` mailboxes; returns those this
    worker owns now, each with its fencing token (``mailboxes.fence``). Renewals and
    hand-backs are one statement each."""
    accounts = sorted(set(wanted))
    if not accounts:
        return {}
    with db.write() as session:
        now = database_now(session)
        live = set(live_workers(session, now)) | {worker_id}
        holders = {
            account_id: (holder, token)
            for account_id, holder, token in session.execute(
                select(
                    MailboxLease.account_id, MailboxLease.worker_id, MailboxLease.fencing_token
                ).where(MailboxLease.account_id.in_(accounts))
            )
        }
        owned: dict[int, int] = {}
        renew: list[int] = []
        hand_back: list[int] = []
        for account_id in accounts:
            holder, token = holders.get(account_id, (None, 0))
            if preferred(account_id, live) != worker_id:
                if holder == worker_id:
                    hand_back.append(account_id)  # the preferred worker takes it next
            elif holder == worker_id:
                renew.append(account_id)
                owned[account_id] = token
            elif (
                taken := _take(session, worker_id, account_id, holder is not None, now)
            ) is not None:
                owned[account_id] = taken
        mine = (MailboxLease.worker_id == worker_id,)
        if renew:
            session.execute(
                update(MailboxLease)
                .where(*mine, MailboxLease.account_id.in_(renew))
                .values(expires_at=now + LEASE)
                .execution_options(synchronize_session=False)
            )
        if hand_back:
            session.execute(
                delete(MailboxLease)
                .where(*mine, MailboxLease.account_id.in_(hand_back))
                .execution_options(synchronize_session=False)
            )
            # Due at once: the preferred worker takes them at its next pass (about a
            # second), instead of at their next poll time.
            session.execute(
                update(Account)
                .where(Account.id.in_(hand_back))
                .values(next_sync_at=now)
                .execution_options(synchronize_session=False)
            )
        return owned


def _take(
    session: Session, worker_id: str, account_id: int, leased: bool, now: datetime
) -> int | None:
    """The new lease's fencing token, or None when another worker holds it still."""
    if not leased:
        values = {
            "account_id": account_id,
            "worker_id": worker_id,
            "fencing_token": 1,
            "acquired_at": now,
            "expires_at": now + LEASE,
        }
        taken = insert_ignore(
            session,
            MailboxLease.__table__,  # type: ignore[arg-type]
            conflict=["account_id"],
            returning=MailboxLease.fencing_token,
            values=values,
        )
        return None if taken is None else int(taken)
    # Only an expired lease is taken over; the conditional UPDATE settles a race with a
    # worker renewing it at the same moment (one of the two sees no row changed).
    return session.execute(
        update(MailboxLease)
        .where(MailboxLease.account_id == account_id, MailboxLease.expires_at < now)
        .values(
            worker_id=worker_id,
            fencing_token=MailboxLease.fencing_token + 1,
            acquired_at=now,
            expires_at=now + LEASE,
        )
        .returning(MailboxLease.fencing_token)
        .execution_options(synchronize_session=False)
    ).scalar_one_or_none()


def release_all(db: Database, worker_id: str) -> None:
    """At a clean stop: the others take these mailboxes at once, without waiting LEASE."""
    with db.write() as session:
        session.execute(delete(MailboxLease).where(MailboxLease.worker_id == worker_id))


def owners(db: Database) -> dict[int, str]:
    """Mailbox → worker, for the leases still running."""
    with db.read() as session:
        now = database_now(session)
        rows = session.execute(
            select(MailboxLease.account_id, MailboxLease.worker_id).where(
                MailboxLease.expires_at >= now
            )
        )
        return {int(account_id): str(worker) for account_id, worker in rows}
