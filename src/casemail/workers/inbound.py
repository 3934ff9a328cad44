"""Stored mail that still waits for processing: the listener or a mailbox sync stored it
but did not finish (the process died, a failure to retry). Claimed in batches with
``SKIP LOCKED``, so any number of workers share it without waiting for each other; idle,
a worker wakes when such mail is announced (``wakeup``), else every
``worker_interval_seconds`` (a claim that ran out, a retry)."""

from __future__ import annotations

import asyncio
import logging

from casemail.bootstrap import AppContext
from casemail.workers import wakeup
from casemail.workers.jobs import REPROCESS_BATCH, reprocess_pending

log = logging.getLogger("casemail.workers")


async def run_inbound(ctx: AppContext, stop: asyncio.Event) -> None:
    woken = wakeup.bell.subscribe("inbound")
    interval = ctx.settings.worker_interval_seconds
    try:
        while not stop.is_set():
            handled = 0
            try:
                handled = await asyncio.to_thread(reprocess_pending, ctx.db, ctx.ingest_options)
            except Exception:
                log.exception("processing stored mail failed; trying again in %.0f s", interval)
            if handled == REPROCESS_BATCH:
                continue  # more may be waiting
            await wakeup.nap(stop, woken, interval)
    finally:
        wakeup.bell.unsubscribe("inbound", woken)
