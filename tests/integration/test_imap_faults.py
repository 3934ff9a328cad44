"""IMAP sync under faults, counted exactly: messages delivered = history entries +
quarantined, none twice. A message removed during the sync, the server dropping the link in
the middle of a FETCH, and the syncing process killed with SIGKILL at random points."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path

import pytest
from sqlalchemy import select

from casemail.db import Database
from casemail.db.models import MailboxFolder
from casemail.ingest import IngestOptions, pending_receipts, process_receipt
from casemail.mailboxes.errors import MailboxError
from casemail.mailboxes.imap_sync import sync_imap
from casemail.mailboxes.job import MailboxJob, Progress
from casemail.mailboxes.store import folder_state
from tests.imapsupport import counts, imap_job
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
        before = counts(db)
        assert 0 < before.history < delivered
        assert before.items == before.history

        report = sync_imap(job)  # the next run, on an unbroken link
    assert report.stored == delivered - before.history
    assert report.duplicates == 0
    after = counts(db)
    assert after.accounted == delivered
    assert after.receipts == after.items == after.distinct_message_ids == delivered
    assert folder_state(db, job.account_id, "INBOX").last_uid == delivered


def test_a_link_gone_silent_in_the_middle_of_a_fetch_times_out(
    db: Database, dovecot: Dovecot, mail_user: MailUser
) -> None:
    for n in range(6):
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
    assert counts(db).history == 3
    direct = replace(job.endpoint, port=dovecot.ports.imaps)
    assert sync_imap(replace(job, endpoint=direct, on_progress=None)).stored == 3
    assert counts(db).accounted == counts(db).distinct_message_ids == 6


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
    with db.read() as session:
        done = session.scalar(
            select(MailboxFolder.messages_done).where(MailboxFolder.account_id == account_id)
        )
        return int(done or 0)


def _kill_after(
    child: subprocess.Popen[bytes], db: Database, job: MailboxJob, at: int, delay: float
) -> int:
    """SIGKILL the child ``delay`` seconds after ``at`` messages are done."""
    deadline = time.monotonic() + 60
    while child.poll() is None and _done(db, job.account_id) < at:
        assert time.monotonic() < deadline, child.stderr.read() if child.stderr else ""
        time.sleep(0.002)
    time.sleep(delay)
    os.kill(child.pid, signal.SIGKILL)
    child.wait(timeout=10)
    return _done(db, job.account_id)


def test_kill_9_during_a_sync_loses_nothing_and_stores_nothing_twice(
    db: Database, db_url: str, dovecot: Dovecot, mail_user: MailUser
) -> None:
    delivered = 300
    for n in range(delivered):
        dovecot.deliver(mail_user, sample_message(subject=f"Order {n}"))
    # Claims of a killed process expire after a second (the worker then takes them again).
    job = imap_job(db, dovecot, mail_user, batch_size=20, options=IngestOptions(claim_seconds=1))
    seed = random.randrange(2**32)
    rng = random.Random(seed)
    done, kills = 0, 0
    for _ in range(3):
        child = _child(job, db_url, mail_user.password)
        target = done + rng.randint(5, 70)
        done = _kill_after(child, db, job, target, rng.uniform(0, 0.03))
        kills += child.returncode == -signal.SIGKILL
    assert kills == 3, f"seed {seed}"
    assert 0 < done < delivered, f"seed {seed}"

    sync_imap(job)  # the run after the last kill finishes the folder
    time.sleep(1.1)
    for inbound_id in pending_receipts(db):  # what a killed process was processing
        process_receipt(db, inbound_id, job.options)

    after = counts(db)
    assert after.accounted == delivered, f"seed {seed}: {after}"
    assert after.receipts == after.items == after.distinct_message_ids == delivered, seed
    assert pending_receipts(db) == []
    assert folder_state(db, job.account_id, "INBOX").last_uid == delivered
