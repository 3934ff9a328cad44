"""``casemail serve``: the API, the SMTP listener and the workers in one event loop."""

from __future__ import annotations

import asyncio
import logging
import signal
from collections.abc import Iterator
from contextlib import contextmanager, suppress

import uvicorn

from casemail.api.app import create_app
from casemail.bootstrap import AppContext
from casemail.listener.server import start_listeners
from casemail.workers.supervisor import run_workers

log = logging.getLogger("casemail.service")


class _ApiServer(uvicorn.Server):
    """uvicorn, minus its signal handling: ``serve`` owns SIGINT/SIGTERM.

    uvicorn re-raises a captured signal as soon as the HTTP server has stopped, which would
    kill the process before the SMTP listener and the workers have finished their work.
    """

    @contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


def _banner(ctx: AppContext) -> str:
    s = ctx.settings
    tls = "STARTTLS required" if s.smtp_require_tls else ("STARTTLS" if s.smtp_starttls else "")
    smtps = f", SMTPS {s.smtp_host}:{s.smtps_port}" if s.smtps_port else ""
    return (
        f"casemail serving: HTTP http://{s.http_host}:{s.http_port} "
        f"SMTP {s.smtp_host}:{s.smtp_port} {tls}{smtps}; database {ctx.db.dialect}; "
        f"workers {'on' if s.workers else 'off'}"
    )


async def serve(ctx: AppContext) -> None:
    settings = ctx.settings
    listeners = await start_listeners(settings, ctx.db)
    stop = asyncio.Event()
    workers = (
        asyncio.create_task(run_workers(ctx, stop, kind="serve")) if settings.workers else None
    )
    config = uvicorn.Config(
        create_app(ctx),
        host=settings.http_host,
        port=settings.http_port,
        log_level=settings.log_level.lower(),
        access_log=False,
        lifespan="off",
    )
    server = _ApiServer(config)
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, _request_exit, server, sig)
    print(_banner(ctx), flush=True)
    try:
        await server.serve()
    finally:
        stop.set()
        for listener in listeners:
            listener.close()
        for listener in listeners:
            with suppress(Exception):
                await asyncio.wait_for(listener.wait_closed(), timeout=5)
        if workers is not None:
            with suppress(Exception):
                await asyncio.wait_for(workers, timeout=30)
        ctx.db.dispose()
        log.info("casemail stopped")


def _request_exit(server: uvicorn.Server, sig: signal.Signals) -> None:
    log.info("%s received: finishing work in progress, then stopping", sig.name)
    # A second signal means "now": uvicorn stops without waiting for open connections.
    server.force_exit = server.should_exit
    server.should_exit = True
