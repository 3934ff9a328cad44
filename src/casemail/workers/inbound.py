"""Stored mail that still waits for processing: the listener or a mailbox sync stored it
but did not finish (the process died, a failure to retry). Claimed in batches with
``SKIP LOCKED``, so any number of workers share it without waiting for each other; idle,
a worker wakes when such mail is announced (``wakeup``), else every
``worker_interval_seconds`` (a claim that ran out, a retry)."""

from __future__ import annotations

import asyncio

from casemail.bootstrap import AppContext
from casemail.workers import wakeup
from casemail.workers.jobs import reprocess_pending


async def run_inbound(ctx: AppContext, stop: asyncio.Event) -> None:
    async def one_round() -> int:
        return await asyncio.to_thread(reprocess_pending, ctx.db, ctx.ingest_options)

    interval = ctx.settings.worker_interval_seconds
    await wakeup.work_rounds(stop, "inbound", interval, one_round, "processing stored mail failed")
