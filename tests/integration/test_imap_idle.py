"""IMAP IDLE against a real Dovecot: a delivery becomes a case within two seconds, IDLE is
restarted on time, a dropped link ends the wait with a clear error, and a server without
IDLE is recognised."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

import pytest

from casemail.db import Database
from casemail.mailboxes.errors import MailboxError
from casemail.mailboxes.imap_idle import (
    IDLE_RESTART_SECONDS,
    IdleUnsupported,
    idle_imap,
    supports_idle,
)
from casemail.mailboxes.job import MailboxJob
from tests.imapsupport import counts, imap_job
from tests.mailservers import Dovecot, DropProxy, MailUser, add_user_with_capabilities
from tests.support import sample_message


async def _until(check: Callable[[], bool], seconds: float) -> float:
    """Seconds until ``check()`` held; fails after ``seconds``."""
    start = time.monotonic()
    while not await asyncio.to_thread(check):
        assert time.monotonic() - start < seconds, f"not within {seconds} s"
        await asyncio.sleep(0.02)
    return time.monotonic() - start


def _history_is(db: Database, entries: int) -> Callable[[], bool]:
    return lambda: counts(db).history == entries


class Idler:
    """``idle_imap`` as a task, counting the syncs it ran."""

    def __init__(self, job: MailboxJob, **options: float) -> None:
        self.job = job
        self.options = options
        self.stop = asyncio.Event()
        self.syncs = 0
        self.task: asyncio.Task[None] | None = None

    def _woke(self) -> None:
        self.syncs += 1

    async def __aenter__(self) -> Idler:
        seconds = self.options
        self.task = asyncio.create_task(
            idle_imap(
                self.job,
                self.stop,
                on_wake=self._woke,
                max_idle_seconds=seconds.get("max_idle_seconds", IDLE_RESTART_SECONDS),
                poll_seconds=seconds.get("poll_seconds"),
            )
        )
        await _until(lambda: self.syncs >= 1, 10)  # the first sync ran: now it waits
        return self

    async def __aexit__(self, *_exc: object) -> None:
        self.stop.set()
        assert self.task is not None
        await asyncio.wait_for(self.task, 5)


def test_a_delivery_becomes_a_case_within_two_seconds(
    db: Database, dovecot: Dovecot, mail_user: MailUser
) -> None:
    dovecot.deliver(mail_user, sample_message(subject="Before the session started"))
    job = imap_job(db, dovecot, mail_user)
    assert supports_idle(job)

    async def scenario() -> None:
        async with Idler(job, max_idle_seconds=0.3) as idler:
            assert counts(db).history == 1  # caught up at the start
            await asyncio.sleep(1)  # several IDLE restarts (every 0.3 s)
            assert idler.syncs == 1  # ... and no sync without news
            for n in range(2):
                await asyncio.to_thread(dovecot.deliver, mail_user, sample_message())
                took = await _until(_history_is(db, 2 + n), 2)
                assert took < 2
            await _until(lambda: idler.syncs >= 3, 2)  # on_wake follows each sync

    asyncio.run(scenario())
    assert counts(db).history == 3


def test_a_dropped_link_ends_the_wait_with_a_clear_error(
    db: Database, dovecot: Dovecot, mail_user: MailUser
) -> None:
    with DropProxy(dovecot.ports.imaps) as proxy:
        job = imap_job(db, dovecot, mail_user, port=proxy.port)

        async def scenario() -> None:
            stop = asyncio.Event()
            task = asyncio.create_task(idle_imap(job, stop))
            await asyncio.sleep(0.5)
            assert not task.done()
            proxy.drop_all()
            start = time.monotonic()
            with pytest.raises(MailboxError, match=r"waiting for new mail .*connection broke"):
                await asyncio.wait_for(task, 5)
            assert time.monotonic() - start < 2

        asyncio.run(scenario())


def test_a_link_gone_silent_is_noticed_at_the_next_idle_restart(
    db: Database, dovecot: Dovecot, mail_user: MailUser
) -> None:
    with DropProxy(dovecot.ports.imaps) as proxy:
        job = imap_job(db, dovecot, mail_user, port=proxy.port, read_timeout=1)

        async def scenario() -> None:
            stop = asyncio.Event()
            task = asyncio.create_task(idle_imap(job, stop, max_idle_seconds=0.5))
            await asyncio.sleep(0.5)
            proxy.freeze()  # no FIN, no RST: only a timeout can tell
            start = time.monotonic()
            with pytest.raises(MailboxError, match="no answer within 1 s"):
                await asyncio.wait_for(task, 5)
            assert time.monotonic() - start < 2.5

        asyncio.run(scenario())


def test_a_server_without_idle_is_recognised(db: Database, dovecot: Dovecot) -> None:
    user = add_user_with_capabilities(dovecot, "IMAP4rev1", "UIDPLUS")
    job = imap_job(db, dovecot, user)
    assert not supports_idle(job)

    async def scenario() -> None:
        with pytest.raises(IdleUnsupported, match="does not offer IDLE"):
            await idle_imap(job, asyncio.Event())

    asyncio.run(scenario())
