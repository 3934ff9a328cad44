"""The outbox sender inside ``casemail serve`` / ``casemail worker``: back to back while the
outbox has work; idle, it wakes when a mail is queued (``wakeup``), or after
``worker_interval_seconds`` for what became due by time (retries)."""

from __future__ import annotations

import asyncio
import logging

from casemail.bootstrap import AppContext
from casemail.outbound.sender import send_due
from casemail.workers import wakeup

log = logging.getLogger("casemail.outbound")


async def run_outbox(ctx: AppContext, stop: asyncio.Event) -> None:
    woken = wakeup.bell.subscribe("outbox")
    try:
        await _send_rounds(ctx, stop, woken)
    finally:
        wakeup.bell.unsubscribe("outbox", woken)


async def _send_rounds(ctx: AppContext, stop: asyncio.Event, woken: asyncio.Event) -> None:
    interval = ctx.settings.worker_interval_seconds
    while not stop.is_set():
        handled = 0
        try:
            handled = await send_due(ctx.db, ctx.settings, ctx.keys)
        except Exception:
            # A failing round (database gone, a bug) must not end the sender: the entries it
            # claimed come back when their claims expire.
            log.exception("outbox round failed; trying again in %.0f s", interval)
        if handled:
            continue
        await wakeup.nap(stop, woken, interval)
