"""IMAP sync under faults, counted exactly: messages delivered = history entries +
quarantined, none twice. A message removed during the sync, the server dropping the link in
the middle of a FETCH, a message whose processing always fails, and a 2,000-message sync
whose process is killed with SIGKILL at random points."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import replace
from pathlib import Path

import pytest
from sqlalchemy import func, select

from casemail.db import Database
from casemail.db.models import InboundReceipt, MailboxFolder, MailboxItem, QuarantineEntry
from casemail.ingest import IngestOptions, pending_receipts
from casemail.mailboxes.errors import MailboxError
from casemail.mailboxes.imap_sync import sync_imap
from casemail.mailboxes.job import MailboxJob, Progress
from casemail.mailboxes.store import folder_state
from casemail.workers.jobs import reprocess_pending
from tests.imapsupport import PoisonWrites, counts, imap_job
from tests.mailservers import Dovecot, DropProxy, MailUser
from tests.support import sample_message

ROOT = Path(__file__).resolve().parents[2]


def test_a_message_removed_by_another_client_during_the_sync_is_skipped(
    db: Database, dovecot: Dovecot, mail_user: MailUser
) -> None:
    for n in range(3):
        dovecot.deliver(mail_user, sample_message(subject=f"Message {n}"))

    def colleague_deletes_the_second(progress: Progress) -> None:
        if progress.done == 0:  # after the search, before the first FETCH
            with dovecot.imap(mail_user) as colleague:
                colleague.select_folder("INBOX")
                colleague.delete_messages([2])
                colleague.expunge()

    job = imap_job(db, dovecot, mail_user, on_progress=colleague_deletes_the_second)
    report = sync_imap(job)
    assert report.stored == 2
    state = folder_state(db, job.account_id, "INBOX")
    assert (state.last_uid, state.messages_done) == (3, 2)
    assert sync_imap(replace(job, on_progress=None)).stored == 0
    assert counts(db).history == 2


def test_connection_dropped_in_the_middle_of_a_fetch(
    db: Database, dovecot: Dovecot, mail_user: MailUser
) -> None:
    delivered = 40
    for n in range(delivered):
        body = f"Line {n} of a long complaint.\n" * 80  # about 2.5 kB each
        dovecot.deliver(mail_user, sample_message(subject=f"Complaint {n}", body=body))
    with DropProxy(dovecot.ports.imaps) as proxy:
        proxy.cut_after = [50_000]  # TLS and login take a few kB; the bodies about 100 kB
        job = imap_job(db, dovecot, mail_user, port=proxy.port, batch_size=5)
        with pytest.raises(MailboxError) as failed:
            sync_imap(job)
        assert proxy.cuts == 1
        message = str(failed.value)
        assert f"127.0.0.1:{proxy.port}" in message
        assert "fetching 5 messages" in message
        assert "connection broke" in message
        # Whole batches before the cut are stored and on cases; of the broken one, nothing.
        before = counts(db)
        assert 0 < before.history < delivered
        assert before.history % 5 == 0
        assert before.receipts == before.items == before.history == before.distinct_message_ids
        assert before.quarantined == 0
        assert pending_receipts(db) == []
        state = folder_state(db, job.account_id, "INBOX")
        assert (state.last_uid, state.messages_done) == (before.items, before.items)

        report = sync_imap(job)  # the next run, on an unbroken link
        again = sync_imap(job)
    assert (report.stored, report.duplicates) == (delivered - before.history, 0)
    assert (again.stored, again.duplicates) == (0, 0)
    after = counts(db)
    assert (after.history, after.quarantined) == (delivered, 0)
    assert after.accounted == delivered
    assert after.receipts == after.items == after.distinct_message_ids == delivered
    assert pending_receipts(db) == []
    state = folder_state(db, job.account_id, "INBOX")
    assert (state.last_uid, state.messages_done) == (delivered, delivered)


def test_a_message_that_always_fails_processing_ends_in_quarantine_and_the_rest_flow(
    db: Database, dovecot: Dovecot, mail_user: MailUser
) -> None:
    delivered, poison = 30, 13  # the poison is UID 13, in the middle of the third batch
    subjects = [f"Question {uid}" for uid in range(1, delivered + 1)]
    subjects[poison - 1] = "poison pill"
    dovecot.append_many(mail_user, "INBOX", (sample_message(subject=s) for s in subjects))
    flaky = PoisonWrites(db)
    job = replace(imap_job(db, dovecot, mail_user, batch_size=5), db=flaky)

    report = sync_imap(job)

    # Stored first, all of it: the poison waits for its retries, the rest are on cases.
    assert (report.stored, report.duplicates, report.quarantined) == (delivered, 0, 0)
    first = counts(db)
    assert (first.receipts, first.items) == (delivered, delivered)
    assert (first.history, first.quarantined) == (delivered - 1, 0)
    assert first.distinct_message_ids == delivered - 1
    state = folder_state(db, job.account_id, "INBOX")
    assert (state.last_uid, state.messages_done) == (delivered, delivered)
    [waiting] = pending_receipts(db)
    with db.read() as session:
        receipt = session.get_one(InboundReceipt, waiting)
        item = session.scalars(select(MailboxItem).where(MailboxItem.inbound_id == waiting)).one()
    assert (receipt.state, receipt.attempts, item.uid) == ("received", 1, poison)
    assert PoisonWrites.error in (receipt.last_error or "")

    # Mail that arrives meanwhile is not held up behind it.
    dovecot.append_many(mail_user, "INBOX", [sample_message(subject="Later")])
    later = sync_imap(job)
    assert (later.stored, later.duplicates, later.quarantined) == (1, 0, 0)
    delivered += 1

    retries = 0
    while reprocess_pending(flaky, job.options):  # what the worker does
        retries += 1
    assert retries == job.options.max_attempts - 1

    after = counts(db)
    assert (after.history, after.quarantined) == (delivered - 1, 1)
    assert after.accounted == delivered
    assert after.receipts == after.items == delivered
    assert after.distinct_message_ids == after.history
    assert pending_receipts(db) == []
    with db.read() as session:
        entry = session.scalars(select(QuarantineEntry)).one()
        receipt = session.get_one(InboundReceipt, waiting)
    assert (entry.inbound_id, entry.reason_code, receipt.state) == (
        waiting,
        "processing-failed",
        "quarantined",
    )
    assert f"Processing failed {job.options.max_attempts} times" in entry.reason
    assert f"RuntimeError: {PoisonWrites.error}" in entry.reason

    again = sync_imap(job)  # nothing is fetched or stored twice, the poison included
    assert (again.stored, again.duplicates, again.quarantined) == (0, 0, 0)
    assert counts(db) == after


def test_a_link_gone_silent_in_the_middle_of_a_fetch_times_out(
    db: Database, dovecot: Dovecot, mail_user: MailUser
) -> None:
    for n in range(9):
        dovecot.deliver(mail_user, sample_message(subject=f"Question {n}"))
    with DropProxy(dovecot.ports.imaps) as proxy:

        def link_dies_after_the_first_batch(progress: Progress) -> None:
            if progress.done == 3:
                proxy.freeze()

        job = imap_job(
            db,
            dovecot,
            mail_user,
            port=proxy.port,
            read_timeout=1,
            batch_size=3,
            on_progress=link_dies_after_the_first_batch,
        )
        start = time.monotonic()
        with pytest.raises(MailboxError, match=r"fetching 3 messages .* no answer within 1 s"):
            sync_imap(job)
        assert time.monotonic() - start < 5
    # The second batch may have been fetched ahead before the link froze; the third not.
    stored = counts(db).history
    assert stored in (3, 6)
    direct = replace(job.endpoint, port=dovecot.ports.imaps)
    assert sync_imap(replace(job, endpoint=direct, on_progress=None)).stored == 9 - stored
    assert counts(db).accounted == counts(db).distinct_message_ids == 9


def _child(job: MailboxJob, db_url: str, password: str) -> subprocess.Popen[bytes]:
    spec = {
        "db_url": db_url,
        "account_id": job.account_id,
        "channel_id": job.channel_id,
        "port": job.endpoint.port,
        "username": job.endpoint.username,
        "password": password,
        "ca_file": str(job.endpoint.ca_file),
        "batch_size": job.batch_size,
        "claim_seconds": job.options.claim_seconds,
    }
    command = [sys.executable, "-m", "tests.imap_sync_child", json.dumps(spec)]
    return subprocess.Popen(command, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def _done(db: Database, account_id: int) -> int:
    """The folder's count of messages stored, read without taking SQLite's write lock."""
    with db.read() as session:
        done = session.scalar(
            select(MailboxFolder.messages_done).where(MailboxFolder.account_id == account_id)
        )
        return int(done or 0)


def _states(db: Database, after_id: int) -> Counter[str]:
    """How many receipts newer than ``after_id`` are in each state."""
    with db.read() as session:
        rows = session.execute(
            select(InboundReceipt.state, func.count())
            .where(InboundReceipt.id > after_id)
            .group_by(InboundReceipt.state)
        ).all()
    return Counter({str(state): int(n) for state, n in rows})


def _last_receipt_id(db: Database) -> int:
    with db.read() as session:
        return int(session.scalar(select(func.max(InboundReceipt.id))) or 0)


# Where a kill can land in one batch of the sync (fetch, store, claim, decide):
FETCHING = "fetching"  # nothing of the batch committed: it is fetched again next run
STORED = "stored"  # the batch committed, none of it claimed yet: receipts wait in received
PROCESSING = "processing"  # claimed and half decided: the claims expire, a worker retries


def _landed(db: Database, after_id: int) -> str:
    """Where the kill landed, from what the dead process left in the database: receipts it
    had claimed and not decided, receipts it had stored and not claimed, or neither."""
    states = _states(db, after_id)
    if states["processing"]:
        return PROCESSING
    return STORED if states["received"] else FETCHING


def _wait_for(
    child: subprocess.Popen[bytes], what: str, ready: Callable[[], bool], context: str
) -> None:
    deadline = time.monotonic() + 60
    while not ready():
        if child.poll() is not None:
            _, err = child.communicate()
            tail = err.decode(errors="replace")[-2000:]
            raise AssertionError(f"{context}: the sync ended before {what}: {tail}")
        assert time.monotonic() < deadline, f"{context}: no {what} within 60 s"
        time.sleep(0.001)


def _kill_in_a_batch(
    child: subprocess.Popen[bytes],
    db: Database,
    job: MailboxJob,
    *,
    at: int,
    aim: str,
    after_id: int,
    delay: float,
    context: str,
) -> None:
    """SIGKILL the child in the batch after ``at`` messages are done, ``delay`` seconds
    after that batch's receipts are claimed (aim PROCESSING), or after they are all decided,
    when the child fetches and stores the next batch (aim FETCHING)."""

    def claimed() -> bool:
        return _states(db, after_id)["processing"] > 0

    def decided() -> bool:
        states = _states(db, after_id)
        return states["processing"] + states["received"] == 0

    _wait_for(child, f"{at} messages done", lambda: _done(db, job.account_id) >= at, context)
    if aim == PROCESSING:
        _wait_for(child, "a claimed batch", claimed, context)
    else:
        _wait_for(child, "a decided batch", decided, context)
    time.sleep(delay)
    os.kill(child.pid, signal.SIGKILL)
    child.wait(timeout=10)
    assert child.returncode == -signal.SIGKILL, (context, child.communicate())


def _orders(count: int) -> Iterator[bytes]:
    """``count`` messages like ``sample_message``'s, each with its own subject and
    Message-ID, from 50 customers (one sender of 2,000 messages a minute would rightly be
    stopped by the channel's rate limit), made from one of them by replacing those fields
    (making 2,000 EmailMessages takes seconds)."""
    template = sample_message(subject="Order #", sender="Alice <alice@customer.example>")
    raw, message_id = template.as_bytes(), str(template["Message-ID"]).encode()
    local, domain = message_id.strip(b"<>").split(b"@")
    for n in range(count):
        unique = b"<%s.%d@%s>" % (local, n, domain)
        sender = b"<customer%d@customer.example>" % (n % 50)
        mail = raw.replace(b"Order #", b"Order %d" % n).replace(message_id, unique)
        yield mail.replace(b"<alice@customer.example>", sender)


def test_kill_9_during_a_sync_loses_nothing_and_stores_nothing_twice(
    db: Database, db_url: str, dovecot: Dovecot, mail_user: MailUser
) -> None:
    """A 2,000-message sync killed with SIGKILL at random points, at least six times: while
    a batch is fetched or stored, and while it is processed. Each kill is checked where it
    lands (from what the dead process left), and the run needs both kinds. The seed is in
    every assertion message; CASEMAIL_TEST_KILL_SEED=<seed> repeats its kill points."""
    delivered, batch = 2000, 20
    dovecot.append_many(mail_user, "INBOX", _orders(delivered))
    # Claims of a killed process expire after a second (the worker then takes them again).
    job = imap_job(db, dovecot, mail_user, batch_size=batch, options=IngestOptions(claim_seconds=1))
    seed = int(os.environ.get("CASEMAIL_TEST_KILL_SEED") or random.randrange(2**32))
    rng = random.Random(seed)
    # Six kills at random points spread over the first 1,600 messages, half aimed at the
    # fetch of a batch and half at its processing; up to four more, spaced closer, if the
    # timing made one kind miss. The rest of the folder is for the last, unkilled run.
    aims = [FETCHING, PROCESSING] * 3
    rng.shuffle(aims)
    span = (delivered - 400) // len(aims)
    kills: list[tuple[str, int, str]] = []  # (aimed at, messages done, landed)
    claimed = 0  # receipts the killed processes left claimed: they are processed twice
    while True:
        landed = {kind for _, _, kind in kills}
        missing = [k for k in (PROCESSING, FETCHING) if k not in landed]
        if len(kills) >= len(aims) and (not missing or len(kills) >= len(aims) + 4):
            break
        n = len(kills)
        done = _done(db, job.account_id)
        if n < len(aims):
            aim, at = aims[n], max(done + 1, rng.randint(n * span + 1, (n + 1) * span))
        else:
            aim, at = missing[0], done + rng.randint(1, 60)
        after_id = _last_receipt_id(db)
        child = _child(job, db_url, mail_user.password)
        delay = rng.uniform(0, 0.02) if aim == PROCESSING else rng.uniform(0, 0.04)
        context = f"seed {seed}, kill {n + 1} aimed at {aim} after {at}, before it: {kills}"
        _kill_in_a_batch(
            child, db, job, at=at, aim=aim, after_id=after_id, delay=delay, context=context
        )
        state = folder_state(db, job.account_id, "INBOX")
        kills.append((aim, state.messages_done, _landed(db, after_id)))
        claimed += _states(db, after_id)["processing"]
        now = counts(db)
        # Raw messages, receipts and mailbox items commit together, UIDs in order.
        assert now.receipts == now.items == state.messages_done == state.last_uid, context
    where = f"seed {seed}, kills (aimed at, done, landed): {kills}"
    landed = {kind for _, _, kind in kills}
    assert {PROCESSING, FETCHING} <= landed, where
    assert 0 < kills[-1][1] < delivered, where

    before = counts(db)
    report = sync_imap(job)  # the run after the last kill finishes the folder
    assert (report.stored, report.duplicates) == (delivered - before.items, 0), where
    time.sleep(1.1)
    while reprocess_pending(db, job.options):  # the worker: what the killed ones left
        pass

    after = counts(db)
    # Each kill left at most one batch undecided, retried once: nothing reached quarantine.
    assert (after.history, after.quarantined) == (delivered, 0), f"{where}: {after}"
    assert after.accounted == delivered, f"{where}: {after}"
    assert after.receipts == after.items == after.distinct_message_ids == delivered, where
    assert pending_receipts(db) == [], where
    state = folder_state(db, job.account_id, "INBOX")
    assert (state.last_uid, state.messages_done) == (delivered, delivered), where
    # Processed twice: exactly the receipts a kill interrupted in their processing.
    with db.read() as session:
        attempts = Counter(session.scalars(select(InboundReceipt.attempts)))
    assert attempts == Counter({1: delivered - claimed, 2: claimed}), where
