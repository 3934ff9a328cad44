"""Runs the periodic jobs in the service's event loop; one failing job never stops the rest."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

from casemail.bootstrap import AppContext
from casemail.webhooks.delivery import deliver_due
from casemail.workers import leases, registry, wakeup
from casemail.workers.inbound import run_inbound
from casemail.workers.jobs import purge_quarantine
from casemail.workers.mailboxes import poll_mailboxes
from casemail.workers.outbox import run_outbox

log = logging.getLogger("casemail.workers")
OUTBOX_STOP_GRACE_SECONDS = 10.0


def _jobs(ctx: AppContext) -> list[tuple[str, Callable[[], int]]]:
    private = ctx.settings.private_hosts_allowed
    return [
        ("purge-quarantine", lambda: purge_quarantine(ctx.db)),
        ("webhooks", lambda: deliver_due(ctx.db, ctx.keys, allow_private=private)),
    ]


async def run_workers(ctx: AppContext, stop: asyncio.Event, *, kind: str = "worker") -> None:
    worker_id = await asyncio.to_thread(
        registry.register, ctx.db, kind=kind, concurrency=ctx.settings.worker_concurrency
    )
    heartbeat = asyncio.create_task(registry.keep_beating(ctx.db, worker_id, stop))
    listening = asyncio.create_task(wakeup.listen(ctx.db, stop))
    mailboxes = asyncio.create_task(poll_mailboxes(ctx, stop, worker_id=worker_id))
    inbound = asyncio.create_task(run_inbound(ctx, stop))
    outbox = asyncio.create_task(run_outbox(ctx, stop))
    try:
        await _run_periodic(ctx, stop)
    finally:
        await heartbeat
        await mailboxes
        await inbound
        await listening
        try:
            # A send in progress may finish; one waiting minutes for a silent server is cut
            # off, and its claim expiring later sends it again (marked maybe_duplicate).
            await asyncio.wait_for(outbox, timeout=OUTBOX_STOP_GRACE_SECONDS)
        except TimeoutError:
            log.warning("outbox sender stopped while sending; its claims expire and retry")
        await asyncio.to_thread(leases.release_all, ctx.db, worker_id)
        await asyncio.to_thread(registry.unregister, ctx.db, worker_id)


async def _run_periodic(ctx: AppContext, stop: asyncio.Event) -> None:
    interval = ctx.settings.worker_interval_seconds
    while not stop.is_set():
        for name, job in _jobs(ctx):
            try:
                await asyncio.to_thread(job)
            except Exception:
                log.exception("job %s failed; it runs again in %.0f s", name, interval)
        try:
            await asyncio.wait_for(stop.wait(), timeout=interval)
        except TimeoutError:
            continue
