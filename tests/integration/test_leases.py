"""Mailbox leases on both databases: one owner per mailbox, spread by rendezvous hashing,
handed over when a worker joins, taken over when one dies, with fencing tokens."""

from __future__ import annotations

from collections import Counter
from datetime import timedelta

from sqlalchemy import select, update

from casemail.db import Database
from casemail.db.models import Account, MailboxLease, WorkerProcess
from casemail.db.types import utcnow
from casemail.workers import leases, registry
from casemail.workers.status import read_status

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
            owned[worker_id] = leases.balance(db, worker_id, accounts)
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
    assert leases.balance(db, first, accounts) == set(accounts) - orphans  # still leased
    with db.write() as session:
        session.execute(
            update(MailboxLease)
            .where(MailboxLease.worker_id == second)
            .values(expires_at=utcnow() - timedelta(seconds=1))
        )
    assert leases.balance(db, first, accounts) == set(accounts)
    with db.read() as session:
        tokens = {
            lease.account_id: lease.fencing_token for lease in session.scalars(select(MailboxLease))
        }
    assert {tokens[a] for a in orphans} == {2}  # changed hands once
    assert {tokens[a] for a in set(accounts) - orphans} == {1}


def test_a_clean_stop_hands_the_mailboxes_over_at_once(db: Database) -> None:
    accounts = _accounts(db)
    first = registry.register(db, kind="worker", concurrency=4)
    second = registry.register(db, kind="worker", concurrency=4)
    _settle(db, [first, second], accounts)
    leases.release_all(db, second)
    registry.unregister(db, second)
    assert leases.balance(db, first, accounts) == set(accounts)
    assert set(_owners(db).values()) == {first}
