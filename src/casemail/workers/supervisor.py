"""Runs the periodic jobs in the service's event loop; one failing job never stops the rest."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

from casemail.bootstrap import AppContext
from casemail.workers.jobs import purge_quarantine, reprocess_pending
from casemail.workers.mailboxes import poll_mailboxes

log = logging.getLogger("casemail.workers")


def _jobs(ctx: AppContext) -> list[tuple[str, Callable[[], int]]]:
    return [
        ("reprocess-pending", lambda: reprocess_pending(ctx.db, ctx.ingest_options)),
        ("purge-quarantine", lambda: purge_quarantine(ctx.db)),
    ]


async def run_workers(ctx: AppContext, stop: asyncio.Event) -> None:
    mailboxes = asyncio.create_task(poll_mailboxes(ctx, stop))
    try:
        await _run_periodic(ctx, stop)
    finally:
        await mailboxes


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
