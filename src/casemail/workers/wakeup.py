"""New work wakes idle workers at once, instead of at their next poll.

Whoever commits work for the workers (a mail queued for sending, a message stored for
processing) calls ``announce`` inside that transaction:

- on PostgreSQL it adds ``pg_notify('casemail_<topic>', '')``, which the server delivers to
  every listening connection, on every host, when the transaction commits, and never if it
  rolls back (PostgreSQL documentation, NOTIFY); several in one transaction arrive as one;
- in every case it rings this process's bell after the commit, so a worker in the same
  process (``casemail serve`` on SQLite) wakes without a database round trip.

Each worker process keeps one connection listening (``listen``), rung into the same bell.
The poll at ``worker_interval_seconds`` stays as a safety net: a notification lost while
the listening connection was down only delays the work until then; after a reconnect the
bell rings once, in case something was missed.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Awaitable, Callable
from typing import Literal, get_args

import psycopg
from sqlalchemy import event, func, select
from sqlalchemy.orm import Session

from casemail.db.engine import Database

log = logging.getLogger("casemail.workers")

Topic = Literal["outbox", "inbound"]
TOPICS: tuple[Topic, ...] = get_args(Topic)
RECONNECT_SECONDS = (1.0, 2.0, 5.0, 10.0, 30.0)


def channel_name(topic: Topic) -> str:
    return f"casemail_{topic}"


class Bell:
    """Per topic, the asyncio events of this process's waiting loops; rung from any thread."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._waiting: dict[str, list[tuple[asyncio.AbstractEventLoop, asyncio.Event]]] = {}

    def subscribe(self, topic: Topic) -> asyncio.Event:
        """An event of the running loop, set whenever ``topic`` is rung."""
        woken = asyncio.Event()
        with self._lock:
            self._waiting.setdefault(topic, []).append((asyncio.get_running_loop(), woken))
        return woken

    def unsubscribe(self, topic: Topic, woken: asyncio.Event) -> None:
        with self._lock:
            waiting = self._waiting.get(topic, [])
            self._waiting[topic] = [(loop, e) for loop, e in waiting if e is not woken]

    def ring(self, topic: str) -> None:
        with self._lock:
            waiting = list(self._waiting.get(topic, []))
        for loop, woken in waiting:
            if not loop.is_closed():
                loop.call_soon_threadsafe(woken.set)


bell = Bell()


def announce(session: Session, topic: Topic) -> None:
    """Wake the workers for ``topic`` when this transaction commits (see the module)."""
    if session.get_bind().dialect.name == "postgresql":
        session.execute(select(func.pg_notify(channel_name(topic), "")))
    rung: set[str] = session.info.setdefault("casemail_rings", set())
    if topic in rung:
        return
    rung.add(topic)

    def after_commit(_session: Session) -> None:
        rung.discard(topic)
        bell.ring(topic)

    event.listen(session, "after_commit", after_commit, once=True)


async def work_rounds(
    stop: asyncio.Event,
    topic: Topic,
    interval: float,
    one_round: Callable[[], Awaitable[int]],
    failed: str,
) -> None:
    """Until ``stop``: rounds back to back while they find work (``one_round`` returns how
    much it handled); idle, sleep until ``topic`` is rung or ``interval`` passes. A round
    that fails is logged (``failed`` says what) and tried again after the interval: the
    claims it held come back when they expire."""
    woken = bell.subscribe(topic)
    try:
        while not stop.is_set():
            handled = 0
            try:
                handled = await one_round()
            except Exception:
                log.exception("%s; trying again in %.0f s", failed, interval)
            if not handled:
                await nap(stop, woken, interval)
    finally:
        bell.unsubscribe(topic, woken)


async def nap(stop: asyncio.Event, woken: asyncio.Event | None, seconds: float) -> None:
    """Sleep up to ``seconds``; sooner when stopped or woken (which is then cleared)."""
    waits = [asyncio.ensure_future(stop.wait())]
    if woken is not None:
        waits.append(asyncio.ensure_future(woken.wait()))
    try:
        await asyncio.wait(waits, timeout=seconds, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for waiting in waits:
            waiting.cancel()
        if woken is not None:
            woken.clear()


async def listen(db: Database, stop: asyncio.Event) -> None:
    """Until ``stop``: LISTEN on PostgreSQL and ring the bell for every notification;
    reconnect with a growing pause when the connection breaks. Nothing to do on SQLite."""
    if db.engine.dialect.name != "postgresql":
        return
    failures = 0
    while not stop.is_set():
        try:
            await _listen_once(conninfo(db), stop)
            return
        except (psycopg.Error, OSError) as exc:
            pause = RECONNECT_SECONDS[min(failures, len(RECONNECT_SECONDS) - 1)]
            failures += 1
            log.warning(
                "listening for new work failed (%s); polling meanwhile, retrying in %.0f s",
                type(exc).__name__,
                pause,
            )
            await nap(stop, None, pause)


def conninfo(db: Database) -> str:
    """psycopg's connection string for the database behind SQLAlchemy's URL."""
    return db.engine.url.set(drivername="postgresql").render_as_string(hide_password=False)


async def _listen_once(url: str, stop: asyncio.Event) -> None:
    connection = await psycopg.AsyncConnection.connect(url, autocommit=True)
    async with connection:
        for topic in TOPICS:
            await connection.execute(f"LISTEN {channel_name(topic)}")
        for topic in TOPICS:
            bell.ring(topic)  # whatever came while nobody listened
        while not stop.is_set():
            # The timeout lets the loop see ``stop``; notifications in between are queued.
            async for notice in connection.notifies(timeout=1.0):
                bell.ring(notice.channel.removeprefix("casemail_"))
