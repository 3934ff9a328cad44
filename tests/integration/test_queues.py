"""The work queues shared by many workers: claims with ``SKIP LOCKED`` (PostgreSQL), and
wake-ups by ``LISTEN/NOTIFY`` and the in-process bell instead of waiting for the next poll."""

from __future__ import annotations

import asyncio
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta

import psycopg
import pytest
from sqlalchemy import select

from casemail.channels.service import add_channel
from casemail.db import Database
from casemail.db.models import Account, InboundReceipt, OutboxEntry
from casemail.db.types import utcnow
from casemail.ingest import IngestOptions, Source
from casemail.ingest.pipeline import claim_receipts, store_for_workers
from casemail.outbound.claims import claim_due
from casemail.workers import wakeup
from casemail.workers.jobs import reprocess_pending
from tests.support import sample_message, wire_bytes

CLAIM = IngestOptions().claim_seconds
WAIT = 10.0  # a claim that waited for the other transaction's locks would block until then


def _postgresql_only(db: Database) -> None:
    if db.engine.dialect.name != "postgresql":
        pytest.skip("row locks: SQLite has one writer at a time, nothing to skip")


def _outbox(db: Database, count: int) -> None:
    with db.write() as session:
        account = Account(company_id=1, role="global", name="Office", email="o@example.com")
        session.add(account)
        session.flush()
        session.add_all(
            OutboxEntry(account_id=account.id, message_id=f"m{n}@example.com", recipients=[])
            for n in range(count)
        )


def test_senders_claim_disjoint_outbox_entries_without_waiting(db: Database) -> None:
    _postgresql_only(db)
    _outbox(db, 10)
    claim = timedelta(minutes=15)

    def second_sender() -> list[int]:
        with db.write() as session:
            return [i for i, _ in claim_due(session, now=utcnow(), claim=claim, limit=5)]

    with ThreadPoolExecutor(1) as pool, db.write() as session:
        first = [i for i, _ in claim_due(session, now=utcnow(), claim=claim, limit=5)]
        # The first sender's transaction is still open and holds its rows.
        second = pool.submit(second_sender).result(timeout=WAIT)
    assert len(first) == len(second) == 5
    assert set(first).isdisjoint(second)


def _receipts(db: Database, count: int) -> tuple[int, list[bytes]]:
    with db.write() as session:
        channel = add_channel(session, address="support@example.com").id
    raws = [wire_bytes(sample_message(subject=f"Question {n}")) for n in range(count)]
    for raw in raws:
        assert store_for_workers(db, channel, raw, Source("smtp")).outcome == "pending"
    return channel, raws


def test_workers_claim_disjoint_receipts_without_waiting(db: Database) -> None:
    _postgresql_only(db)
    _receipts(db, 6)

    def second_worker() -> dict[int, int]:
        with db.write() as session:
            return claim_receipts(session, IngestOptions(), limit=3)

    with ThreadPoolExecutor(1) as pool, db.write() as session:
        first = claim_receipts(session, IngestOptions(), limit=3)
        second = pool.submit(second_worker).result(timeout=WAIT)
    assert len(first) == len(second) == 3
    assert set(first).isdisjoint(second)
    assert set(first.values()) == set(second.values()) == {1}  # first attempts


def test_mail_stored_for_the_workers_becomes_cases_once(db: Database) -> None:
    channel, raws = _receipts(db, 4)
    first = store_for_workers(db, channel, raws[0], Source("smtp"))
    again = store_for_workers(db, channel, raws[0], Source("smtp"))
    assert again == first  # the same message: the first receipt, not a new one
    assert reprocess_pending(db, IngestOptions()) == 4
    assert reprocess_pending(db, IngestOptions()) == 0
    with db.read() as session:
        states = list(session.scalars(select(InboundReceipt.state)))
    assert states == ["done"] * 4


async def _rung(topic: wakeup.Topic, action: object, seconds: float = WAIT) -> bool:
    """Whether the bell rings for ``topic`` within ``seconds`` after ``action`` runs."""
    woken = wakeup.bell.subscribe(topic)
    try:
        await asyncio.to_thread(action)  # type: ignore[arg-type]
        await asyncio.wait_for(woken.wait(), timeout=seconds)
        return True
    except TimeoutError:
        return False
    finally:
        wakeup.bell.unsubscribe(topic, woken)


def test_a_commit_rings_the_bell_and_a_rollback_does_not(db: Database) -> None:
    def committed() -> None:
        with db.write() as session:
            wakeup.announce(session, "outbox")

    def rolled_back() -> None:
        try:
            with db.write() as session:
                wakeup.announce(session, "outbox")
                raise RuntimeError("the transaction fails")
        except RuntimeError:
            pass

    assert asyncio.run(_rung("outbox", committed))
    assert not asyncio.run(_rung("outbox", rolled_back, seconds=1.0))
    assert not asyncio.run(_rung("inbound", committed, seconds=1.0))


def test_a_notification_from_another_host_wakes_the_listening_worker(db: Database) -> None:
    """The listening connection rings this process's bell for a NOTIFY sent by any other
    connection (another host's API or listener): here a bare psycopg connection."""
    _postgresql_only(db)

    def other_host() -> None:
        with psycopg.connect(wakeup.conninfo(db), autocommit=True) as connection:
            connection.execute("SELECT pg_notify('casemail_inbound', '')")

    async def scenario() -> tuple[bool, bool]:
        stop = asyncio.Event()
        woken = wakeup.bell.subscribe("inbound")
        listening = asyncio.create_task(wakeup.listen(db, stop))
        try:
            # The first ring is the one after connecting (for anything missed meanwhile).
            await asyncio.wait_for(woken.wait(), timeout=WAIT)
            woken.clear()
            await asyncio.to_thread(other_host)
            try:
                await asyncio.wait_for(woken.wait(), timeout=WAIT)
            except TimeoutError:
                return True, False
            return True, True
        finally:
            stop.set()
            await listening
            wakeup.bell.unsubscribe("inbound", woken)

    assert asyncio.run(scenario()) == (True, True)
