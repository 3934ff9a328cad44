"""Keeps every mailbox fetched. IMAP accounts whose server offers IDLE (RFC 2177) get a
watcher that syncs as soon as mail arrives; the others are polled at their interval.

Accounts run side by side, so one slow or failing account never holds up the others.
Failures are recorded on the account (state, words, back-off) by the runner; a watcher
that fails ends, and the account is picked up again when its back-off has passed.
"""

from __future__ import annotations

import asyncio
import logging

from casemail.bootstrap import AppContext
from casemail.mailboxes.imap_idle import IdleUnsupported, idle_imap
from casemail.mailboxes.runner import (
    build_job,
    due_accounts,
    record_failure,
    record_success,
    sync_account,
)

log = logging.getLogger("casemail.mailboxes")

PARALLEL_ACCOUNTS = 4


class _Mailboxes:
    def __init__(self, ctx: AppContext, stop: asyncio.Event) -> None:
        self.ctx = ctx
        self.stop = stop
        self.slots = asyncio.Semaphore(PARALLEL_ACCOUNTS)
        self.running: dict[int, asyncio.Task[None]] = {}
        self.no_idle: set[int] = set()  # servers that said they have no IDLE

    def start_due(self, due: list[int]) -> None:
        for account_id in [i for i, t in self.running.items() if t.done()]:
            self.running.pop(account_id)
        for account_id in due:
            if account_id not in self.running:
                self.running[account_id] = asyncio.create_task(self._serve(account_id))

    async def _serve(self, account_id: int) -> None:
        try:
            job = await asyncio.to_thread(build_job, self.ctx, account_id)
        except Exception as exc:  # noqa: BLE001 - e.g. its channel was just deactivated
            await asyncio.to_thread(record_failure, self.ctx.db, account_id, exc)
            return
        if job.endpoint.protocol == "imap" and account_id not in self.no_idle:
            await self._watch(account_id)
        else:
            await self._poll(account_id)

    async def _watch(self, account_id: int) -> None:
        """IDLE until stopped; every sync it runs records the account's health."""
        db = self.ctx.db
        try:
            job = await asyncio.to_thread(build_job, self.ctx, account_id)
            await idle_imap(job, self.stop, on_wake=lambda: record_success(db, account_id))
        except IdleUnsupported:
            self.no_idle.add(account_id)
            await self._poll(account_id)
        except Exception as exc:  # noqa: BLE001 - recorded; retried after the back-off
            await asyncio.to_thread(record_failure, db, account_id, exc)

    async def _poll(self, account_id: int) -> None:
        async with self.slots:
            try:
                report = await asyncio.to_thread(sync_account, self.ctx, account_id)
            except Exception as exc:  # noqa: BLE001 - recorded on the account by the runner
                log.debug("account %s sync failed: %s", account_id, exc)
                return
        if report.stored:
            log.info(
                "account %s: %s new (%s quarantined)", account_id, report.stored, report.quarantined
            )

    async def wait_all(self) -> None:
        if self.running:
            await asyncio.gather(*self.running.values(), return_exceptions=True)


async def poll_mailboxes(ctx: AppContext, stop: asyncio.Event) -> None:
    interval = min(ctx.settings.worker_interval_seconds, 5.0)
    mailboxes = _Mailboxes(ctx, stop)
    while not stop.is_set():
        try:
            due = await asyncio.to_thread(due_accounts, ctx.db)
        except Exception:
            log.exception("could not read which mailboxes are due")
            due = []
        mailboxes.start_due(due)
        try:
            await asyncio.wait_for(stop.wait(), timeout=interval)
        except TimeoutError:
            continue
    await mailboxes.wait_all()
