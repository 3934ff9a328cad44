"""The outbox sender inside ``casemail serve`` / ``casemail worker``: back to back while the
outbox has work; idle, it wakes when a mail is queued (``wakeup``), or after
``worker_interval_seconds`` for what became due by time (retries)."""

from __future__ import annotations

import asyncio

from casemail.bootstrap import AppContext
from casemail.outbound.sender import send_due
from casemail.workers import wakeup


async def run_outbox(ctx: AppContext, stop: asyncio.Event) -> None:
    async def one_round() -> int:
        return await send_due(ctx.db, ctx.settings, ctx.keys)

    interval = ctx.settings.worker_interval_seconds
    await wakeup.work_rounds(stop, "outbox", interval, one_round, "outbox round failed")
