"""Mailbox leases on both databases: one owner per mailbox, spread by rendezvous hashing,
handed over when a worker joins, taken over when one dies, with fencing tokens that keep a
worker which lost its lease from writing."""

from __future__ import annotations

from collections import Counter
from datetime import timedelta

import pytest
from sqlalchemy import select, update

from casemail.channels.service import add_channel
from casemail.db import Database
from casemail.db.models import (
    Account,
    InboundReceipt,
    MailboxFolder,
    MailboxItem,
    MailboxLease,
    WorkerProcess,
)
from casemail.db.types import utcnow
from casemail.ingest import IngestOptions
from casemail.mailboxes.fence import Fence, LeaseLost
from casemail.mailboxes.store import (
    Fetched,
    folder_state,
    start_uidvalidity,
    store_fetched,
    store_fetched_batch,
)
from casemail.workers import leases, registry
from casemail.workers.status import read_status
from tests.support import sample_message

MAILBOXES = 60


def _accounts(db: Database) -> list[int]:
    with db.write() as session:
        rows = [
            Account(company_id=1, role="team", name=f"Box {n}", email=f"box{n}@example.com")
            for n in range(MAILBOXES)
        ]
        session.add_all(rows)
        session.flush()
        return [row.id for row in rows]


def _owners(db: Database) -> dict[int, str]:
    with db.read() as session:
        return {
            lease.account_id: lease.worker_id for lease in session.scalars(select(MailboxLease))
        }


def _settle(db: Database, workers: list[str], accounts: list[int]) -> dict[str, set[int]]:
    """Every worker's pass, twice (a hand-back in the first lets the other take it in the
    second)."""
    owned: dict[str, set[int]] = {}
    for _ in range(2):
        for worker_id in workers:
            owned[worker_id] = set(leases.balance(db, worker_id, accounts))
    return owned


def test_each_mailbox_has_one_owner_and_moves_little(db: Database) -> None:
    accounts = _accounts(db)
    first = registry.register(db, kind="worker", concurrency=4)
    second = registry.register(db, kind="worker", concurrency=4)
    owned = _settle(db, [first, second], accounts)
    assert owned[first].isdisjoint(owned[second])
    assert owned[first] | owned[second] == set(accounts)
    owners = _owners(db)
    assert owners == {a: leases.preferred(a, [first, second]) for a in accounts}
    assert min(Counter(owners.values()).values()) > MAILBOXES // 4  # roughly even

    # A third worker joins: only the mailboxes it now wins move, and they move to it.
    third = registry.register(db, kind="worker", concurrency=4)
    owned = _settle(db, [first, second, third], accounts)
    after = _owners(db)
    moved = {a for a in accounts if after[a] != owners[a]}
    assert moved == owned[third]
    assert 0 < len(moved) < MAILBOXES
    assert sum(len(s) for s in owned.values()) == MAILBOXES
    assert [w.mailboxes for w in read_status(db).workers] == [
        len(owned[first]),
        len(owned[second]),
        len(owned[third]),
    ]


def test_a_dead_workers_mailboxes_are_taken_over_with_a_new_fencing_token(db: Database) -> None:
    accounts = _accounts(db)
    first = registry.register(db, kind="worker", concurrency=4)
    second = registry.register(db, kind="worker", concurrency=4)
    _settle(db, [first, second], accounts)
    orphans = {a for a, w in _owners(db).items() if w == second}
    # The second is killed: no more heartbeats, its leases run out.
    with db.write() as session:
        long_ago = utcnow() - timedelta(minutes=5)
        session.execute(
            update(WorkerProcess).where(WorkerProcess.id == second).values(heartbeat_at=long_ago)
        )
    assert set(leases.balance(db, first, accounts)) == set(accounts) - orphans  # still leased
    with db.write() as session:
        session.execute(
            update(MailboxLease)
            .where(MailboxLease.worker_id == second)
            .values(expires_at=utcnow() - timedelta(seconds=1))
        )
    taken = leases.balance(db, first, accounts)
    assert set(taken) == set(accounts)
    with db.read() as session:
        tokens = {
            lease.account_id: lease.fencing_token for lease in session.scalars(select(MailboxLease))
        }
    assert taken == tokens  # the worker knows the token its writes must carry
    assert {tokens[a] for a in orphans} == {2}  # changed hands once
    assert {tokens[a] for a in set(accounts) - orphans} == {1}


def test_a_clean_stop_hands_the_mailboxes_over_at_once(db: Database) -> None:
    accounts = _accounts(db)
    first = registry.register(db, kind="worker", concurrency=4)
    second = registry.register(db, kind="worker", concurrency=4)
    _settle(db, [first, second], accounts)
    leases.release_all(db, second)
    registry.unregister(db, second)
    assert set(leases.balance(db, first, accounts)) == set(accounts)
    assert set(_owners(db).values()) == {first}


def _expire(db: Database, worker_id: str) -> None:
    """The worker stalls past its lease: no heartbeat, the leases run out."""
    with db.write() as session:
        long_ago = utcnow() - timedelta(minutes=5)
        session.execute(
            update(WorkerProcess).where(WorkerProcess.id == worker_id).values(heartbeat_at=long_ago)
        )
        session.execute(
            update(MailboxLease)
            .where(MailboxLease.worker_id == worker_id)
            .values(expires_at=utcnow() - timedelta(seconds=1))
        )


def _stored(db: Database) -> tuple[int, int]:
    with db.read() as session:
        receipts = len(list(session.scalars(select(InboundReceipt.id))))
        items = len(list(session.scalars(select(MailboxItem.id))))
        return receipts, items


def test_a_worker_that_lost_its_lease_writes_nothing(db: Database) -> None:
    with db.write() as session:
        incoming = {"incoming": {"protocol": "imap", "host": "127.0.0.1"}}
        account = Account(
            company_id=1, role="team", name="Box", email="box@example.com", settings=incoming
        )
        session.add(account)
        session.flush()
        account_id = account.id
        channel_id = add_channel(session, address="box@example.com", account_id=account_id).id
    stale = registry.register(db, kind="worker", concurrency=4)
    old = Fence(account_id, leases.balance(db, stale, [account_id])[account_id])
    start_uidvalidity(db, account_id, "INBOX", 7, fence=old)
    first = (Fetched(account_id, "INBOX", 7, 1), sample_message(subject="One").as_bytes())
    store_fetched_batch(db, channel_id, [first], IngestOptions(), fence=old)
    assert _stored(db) == (1, 1)

    # It stalls; its lease runs out and another worker takes the mailbox (a new token).
    _expire(db, stale)
    current = registry.register(db, kind="worker", concurrency=4)
    new = Fence(account_id, leases.balance(db, current, [account_id])[account_id])
    assert new.token == old.token + 1

    # The stale worker wakes up and goes on: every write it tries is refused, whole.
    second = (Fetched(account_id, "INBOX", 7, 2), sample_message(subject="Two").as_bytes())
    with pytest.raises(LeaseLost, match="no longer held"):
        store_fetched_batch(db, channel_id, [second], IngestOptions(), fence=old)
    with pytest.raises(LeaseLost):
        start_uidvalidity(db, account_id, "INBOX", 8, fence=old)  # would reset the UID mark
    pop3 = Fetched(account_id, "INBOX", uidl="u-2")
    with pytest.raises(LeaseLost):
        store_fetched(db, channel_id, pop3, second[1], IngestOptions(), fence=old)
    assert _stored(db)[1] == 1  # no mailbox item: the stale worker tells the server nothing
    state = folder_state(db, account_id, "INBOX")
    assert (state.uidvalidity, state.last_uid) == (7, 1)

    # The owner stores the same message: once.
    store_fetched_batch(db, channel_id, [second], IngestOptions(), fence=new)
    with db.read() as session:
        row = session.scalars(select(MailboxFolder)).one()
        assert row.last_uid == 2
    receipts, items = _stored(db)
    assert items == 2
    assert receipts == 2  # the stale POP3-style store's raw message was recognised again


def test_an_expired_lease_refuses_writes_before_anyone_takes_it(db: Database) -> None:
    with db.write() as session:
        account = Account(company_id=1, role="team", name="Box", email="box@example.com")
        session.add(account)
        session.flush()
        account_id = account.id
    worker = registry.register(db, kind="worker", concurrency=4)
    fence = Fence(account_id, leases.balance(db, worker, [account_id])[account_id])
    start_uidvalidity(db, account_id, "INBOX", 7, fence=fence)
    _expire(db, worker)
    with pytest.raises(LeaseLost):
        start_uidvalidity(db, account_id, "INBOX", 7, fence=fence)
    with pytest.raises(LeaseLost):
        start_uidvalidity(db, account_id, "INBOX", 7, fence=Fence(account_id + 1, 1))
