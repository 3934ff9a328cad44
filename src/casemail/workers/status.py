"""What ``casemail status`` reports: the worker processes, and the work waiting for them."""

from __future__ import annotations

from datetime import datetime, timedelta

from pydantic import BaseModel
from sqlalchemy import func, select

from casemail.db.engine import Database
from casemail.db.models import (
    Account,
    InboundReceipt,
    MailboxLease,
    OutboxEntry,
    QuarantineEntry,
    WorkerProcess,
)
from casemail.db.types import database_now, utcnow
from casemail.workers.registry import DEAD_AFTER


class WorkerStatus(BaseModel):
    id: str
    host: str
    pid: int
    kind: str
    concurrency: int
    state: str  # running | stopped | dead (no heartbeat for DEAD_AFTER)
    mailboxes: int  # mailboxes it holds the lease of
    started_at: datetime
    heartbeat_age_seconds: float


class Backlog(BaseModel):
    waiting: int
    oldest_age_seconds: float  # how long the oldest one has waited: the lag


class Status(BaseModel):
    workers: list[WorkerStatus]
    outbox: Backlog  # ready to send, or being sent
    inbound: Backlog  # stored, not yet on a case or in quarantine
    accounts_by_state: dict[str, int]
    quarantine_held: int


def read_status(db: Database) -> Status:
    now = utcnow()
    with db.read() as session:
        leased = dict(
            session.execute(
                select(MailboxLease.worker_id, func.count())
                .where(MailboxLease.expires_at >= database_now(session))
                .group_by(MailboxLease.worker_id)
            ).all()
        )
        workers = [
            _worker(row, now, int(leased.get(row.id, 0)))
            for row in session.scalars(select(WorkerProcess).order_by(WorkerProcess.started_at))
        ]
        outbox = _backlog(
            session.execute(
                select(func.count(), func.min(OutboxEntry.next_attempt_at)).where(
                    OutboxEntry.state.in_(("ready", "sending")),
                    OutboxEntry.next_attempt_at <= now,
                )
            ).one(),
            now,
        )
        inbound = _backlog(
            session.execute(
                select(func.count(), func.min(InboundReceipt.received_at)).where(
                    InboundReceipt.state.in_(("received", "processing"))
                )
            ).one(),
            now,
        )
        states = dict(
            session.execute(
                select(Account.sync_state, func.count())
                .where(Account.deactivated_at.is_(None), Account.incoming_active.is_(True))
                .group_by(Account.sync_state)
            ).all()
        )
        held = session.scalar(
            select(func.count()).select_from(QuarantineEntry).where(QuarantineEntry.state == "held")
        )
    return Status(
        workers=workers,
        outbox=outbox,
        inbound=inbound,
        accounts_by_state={str(k): int(v) for k, v in states.items()},
        quarantine_held=int(held or 0),
    )


def _worker(row: WorkerProcess, now: datetime, mailboxes: int) -> WorkerStatus:
    age = now - row.heartbeat_at
    state = "stopped" if row.stopped_at is not None else "dead" if age > DEAD_AFTER else "running"
    return WorkerStatus(
        id=row.id,
        host=row.host,
        pid=row.pid,
        kind=row.kind,
        concurrency=row.concurrency,
        state=state,
        mailboxes=mailboxes,
        started_at=row.started_at,
        heartbeat_age_seconds=round(max(age / timedelta(seconds=1), 0.0), 1),
    )


def _backlog(row: tuple[int, datetime | None], now: datetime) -> Backlog:
    count, oldest = row
    age = (now - oldest) / timedelta(seconds=1) if oldest is not None else 0.0
    return Backlog(waiting=int(count or 0), oldest_age_seconds=round(max(age, 0.0), 1))
