"""The outbox sender inside ``casemail serve`` / ``casemail worker``: a round every
``worker_interval_seconds`` while the outbox is idle, back to back while it has work."""

from __future__ import annotations

import asyncio
import logging

from casemail.bootstrap import AppContext
from casemail.outbound.sender import send_due

log = logging.getLogger("casemail.outbound")


async def run_outbox(ctx: AppContext, stop: asyncio.Event) -> None:
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
        try:
            await asyncio.wait_for(stop.wait(), timeout=interval)
        except TimeoutError:
            continue
