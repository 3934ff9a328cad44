"""Worker processes register themselves and keep a heartbeat in the database.

What ``casemail status`` shows, and the ground for spreading mailboxes over workers later
(issue 9): a worker whose heartbeat is older than ``DEAD_AFTER`` is taken for dead (killed,
or its host gone); one that stopped cleanly says so.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import uuid
from datetime import timedelta

from sqlalchemy import delete

from casemail.db.engine import Database
from casemail.db.models import WorkerProcess
from casemail.db.types import utcnow

log = logging.getLogger("casemail.workers")

HEARTBEAT_SECONDS = 10.0
DEAD_AFTER = timedelta(seconds=30)
FORGET_AFTER = timedelta(days=7)  # stopped or dead workers are listed this long


def register(db: Database, *, kind: str, concurrency: int) -> str:
    worker_id = str(uuid.uuid4())
    now = utcnow()
    with db.write() as session:
        session.execute(
            delete(WorkerProcess).where(WorkerProcess.heartbeat_at < now - FORGET_AFTER)
        )
        session.add(
            WorkerProcess(
                id=worker_id,
                host=socket.gethostname()[:255],
                pid=os.getpid(),
                kind=kind,
                concurrency=concurrency,
                started_at=now,
                heartbeat_at=now,
            )
        )
    log.info("worker %s registered (%s, pid %s)", worker_id, kind, os.getpid())
    return worker_id


def beat(db: Database, worker_id: str) -> None:
    with db.write() as session:
        row = session.get(WorkerProcess, worker_id)
        if row is not None:
            row.heartbeat_at = utcnow()


def unregister(db: Database, worker_id: str) -> None:
    with db.write() as session:
        row = session.get(WorkerProcess, worker_id)
        if row is not None:
            row.stopped_at = row.heartbeat_at = utcnow()


async def keep_beating(db: Database, worker_id: str, stop: asyncio.Event) -> None:
    """Until ``stop``; a failed heartbeat (database away) is logged and tried again."""
    while not stop.is_set():
        try:
            await asyncio.wait_for(stop.wait(), timeout=HEARTBEAT_SECONDS)
        except TimeoutError:
            try:
                await asyncio.to_thread(beat, db, worker_id)
            except Exception:
                log.exception("worker %s: heartbeat failed; trying again", worker_id)
