"""IMAP IDLE (RFC 2177): wait on the account's first folder and sync when mail arrives.

One connection stays in IDLE on the first folder (INBOX); each announced message (EXISTS or
RECENT) starts a sync of all the account's folders on a second connection, so the waiting
session never leaves the folder and cannot miss what arrives during the sync: the server
reports it as soon as IDLE starts again. IDLE watches that one folder only: with more
folders, all are also synced every ``poll_seconds`` (the account's poll interval), so mail
sorted into another folder by a server rule waits no longer than on a polled account.

IDLE is ended and restarted every ``max_idle_seconds`` (default ``IDLE_RESTART_SECONDS``, 25
minutes; never more than the 29 of RFC 2177 section 3, since servers may log off a client
idle for 30), which also proves the link alive, since DONE must be answered within the read
timeout; TCP keepalive notices a peer that vanished without a word sooner. Any failure ends
the wait with ``MailboxError``: the caller reconnects (with its back-off) and falls back to
polling where IDLE is not offered. A stop ends IDLE and logs out, but waits no longer than
``STOP_GRACE_SECONDS`` for a server that does not answer.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import os
import re
import select
import socket
import ssl
import threading
import time
from collections.abc import Callable
from contextlib import suppress
from typing import Any

from casemail.accounts.endpoint import Endpoint
from casemail.mailboxes.errors import MailboxError
from casemail.mailboxes.imap_session import IMAP_FAILURES, capabilities, imap_session, talking
from casemail.mailboxes.imap_sync import sync_imap
from casemail.mailboxes.job import MailboxJob

log = logging.getLogger("casemail.mailboxes")

RFC2177_LIMIT = 29 * 60.0  # the most a single IDLE may last
IDLE_RESTART_SECONDS = 25 * 60.0  # the default: well before the limit, whatever the latency
STOP_GRACE_SECONDS = 2.0  # at a stop, how long DONE and LOGOUT may take before hanging up
_NEW_MAIL = re.compile(rb"^\* (\d+) (EXISTS|RECENT)\b", re.IGNORECASE)
_BYE = re.compile(rb"^\* BYE\b", re.IGNORECASE)


class IdleUnsupported(MailboxError):
    """The server does not offer IDLE: poll the account instead."""


def supports_idle(job: MailboxJob) -> bool:
    """Whether the account's server offers IDLE (asked after login)."""
    with imap_session(job.endpoint) as client:
        return "IDLE" in capabilities(client, job.endpoint)


async def idle_imap(
    job: MailboxJob,
    stop: asyncio.Event,
    *,
    max_idle_seconds: float = IDLE_RESTART_SECONDS,
    poll_seconds: float | None = None,
    on_wake: Callable[[], None] | None = None,
    opening: threading.Semaphore | None = None,
) -> None:
    """Wait for new mail and sync it until ``stop`` is set; returns then. Raises
    ``IdleUnsupported`` or ``MailboxError`` (the caller reconnects). ``on_wake`` is called
    after every sync this runs: once at the start, then after each wake-up. ``poll_seconds``:
    with several folders, how often all are synced without news in the first (None: never)."""
    halt = Halt()

    async def relay() -> None:
        await stop.wait()
        halt.set()

    relay_task = asyncio.create_task(relay())
    watch = functools.partial(
        idle_loop,
        job,
        halt,
        max_idle_seconds=max_idle_seconds,
        poll_seconds=poll_seconds,
        on_wake=on_wake,
        opening=opening,
    )
    try:
        await in_own_thread(watch, f"idle-{job.account_id}")
    finally:
        halt.set()  # also when this coroutine is cancelled: the thread ends soon after
        relay_task.cancel()


async def in_own_thread(work: Callable[[], None], name: str) -> None:
    """Run ``work`` in a thread of its own and wait for it. A watcher blocks its thread for
    as long as it watches: in the event loop's shared pool (a handful of threads) a few
    watchers would take every thread, and every other ``to_thread`` call (heartbeats,
    leases, database work) would wait behind them."""
    loop = asyncio.get_running_loop()
    finished: asyncio.Future[None] = loop.create_future()

    def settle(error: BaseException | None) -> None:
        if finished.done():
            return
        if error is None:
            finished.set_result(None)
        else:
            finished.set_exception(error)

    def target() -> None:
        error: BaseException | None = None
        try:
            work()
        except BaseException as exc:  # noqa: BLE001 - handed to the awaiting coroutine
            error = exc
        with suppress(RuntimeError):  # the loop is closed: nobody waits any more
            loop.call_soon_threadsafe(settle, error)

    threading.Thread(target=target, name=name, daemon=True).start()
    await finished


class Halt(threading.Event):
    """A stop request a waiting socket poll hears at once: ``set`` also writes to a pipe the
    poll watches beside the connection. An idle watcher then sleeps until the server speaks
    or it is stopped, instead of waking every so often to look (a thousand watchers waking
    four times a second kept a worker busy doing nothing)."""

    def __init__(self) -> None:
        super().__init__()
        self._read, self._write = os.pipe()
        os.set_blocking(self._write, False)

    def set(self) -> None:
        super().set()
        with suppress(OSError):  # full (already woken) or closed
            os.write(self._write, b"!")

    def fileno(self) -> int:
        return self._read

    def close(self) -> None:
        for fd in (self._read, self._write):
            with suppress(OSError):
                os.close(fd)

    def __del__(self) -> None:
        self.close()


def idle_loop(
    job: MailboxJob,
    stop: Halt,
    *,
    max_idle_seconds: float = IDLE_RESTART_SECONDS,
    poll_seconds: float | None = None,
    on_wake: Callable[[], None] | None = None,
    opening: threading.Semaphore | None = None,
) -> None:
    """The blocking form of ``idle_imap``, for a thread of its own. ``opening``: held from
    the connection until the first sync is done, so that a worker starting a thousand
    watchers opens a few connections at a time instead of all at once (each is a TLS
    handshake, a login, and on the server a process or two)."""
    gate = _Gate(opening, stop)
    try:
        if not stop.is_set():  # else stopped while waiting for a slot
            _watch(job, stop, gate, max_idle_seconds, poll_seconds, on_wake)
    finally:
        gate.release()  # also when stopped right after taking it: a lost slot is never back


class _Gate:
    """A semaphore slot, taken (unless ``stop`` comes first) and released once."""

    def __init__(self, semaphore: threading.Semaphore | None, stop: threading.Event) -> None:
        self._semaphore: threading.Semaphore | None = None
        while semaphore is not None and not stop.is_set():
            if semaphore.acquire(timeout=0.2):
                self._semaphore = semaphore
                return

    def release(self) -> None:
        if self._semaphore is not None:
            self._semaphore.release()
            self._semaphore = None


def _watch(
    job: MailboxJob,
    stop: Halt,
    gate: _Gate,
    max_idle_seconds: float,
    poll_seconds: float | None,
    on_wake: Callable[[], None] | None,
) -> None:
    endpoint, folder = job.endpoint, job.endpoint.folders[0]
    seconds = min(max_idle_seconds, RFC2177_LIMIT)
    if len(endpoint.folders) == 1:
        poll_seconds = None  # IDLE sees everything there is
    with imap_session(endpoint) as client:
        if "IDLE" not in capabilities(client, endpoint):
            raise IdleUnsupported(
                f"the IMAP server {endpoint.host} does not offer IDLE (RFC 2177): new mail is "
                "found by polling"
            )
        _keepalive(client.socket())
        with talking(endpoint, f"opening the folder {folder!r} to wait for new mail"):
            client.select_folder(folder, readonly=True)
        _sync(job, on_wake)  # what came before the session started watching
        gate.release()
        synced = time.monotonic()
        while not stop.is_set():
            wait = seconds
            if poll_seconds is not None:  # the other folders: until their next sync
                wait = min(seconds, synced + poll_seconds - time.monotonic())
            news = wait > 0 and _idle_once(client, endpoint, stop, wait)
            polled = poll_seconds is not None and time.monotonic() >= synced + poll_seconds
            if news or (polled and not stop.is_set()):
                _sync(job, on_wake)
                synced = time.monotonic()
        # Stopping: LOGOUT (by imap_session) must not hold up the shutdown of the service
        # for a whole read timeout when the link has just died.
        with suppress(OSError):  # already closed by _hang_up
            client.socket().settimeout(min(endpoint.read_timeout, STOP_GRACE_SECONDS))


def _sync(job: MailboxJob, on_wake: Callable[[], None] | None) -> None:
    sync_imap(job)
    if on_wake is not None:
        on_wake()


def _idle_once(client: Any, endpoint: Endpoint, stop: Halt, seconds: float) -> bool:
    """One IDLE command: until new mail, ``stop`` or ``seconds``; True if mail arrived."""
    with talking(endpoint, "waiting for new mail (IDLE)"):
        client.idle()
        news = _wait_for_mail(client, stop, time.monotonic() + seconds)
        if stop.is_set() and not news:
            _hang_up(client, endpoint)
            return False
        _text, responses = client.idle_done()
    return news or any(_announces_mail(r) for r in responses)


def _hang_up(client: Any, endpoint: Endpoint) -> None:
    """A stop during IDLE: DONE, then LOGOUT on leaving the session, each answered within
    ``STOP_GRACE_SECONDS``. A server that does not answer in time (a link gone silent) is
    not waited for, nor is that an error of the account: the connection is just closed."""
    client.socket().settimeout(min(endpoint.read_timeout, STOP_GRACE_SECONDS))
    try:
        client.idle_done()
    except IMAP_FAILURES:
        log.debug("IMAP %s: no answer to DONE while stopping; connection closed", endpoint.host)
        with suppress(*IMAP_FAILURES):
            client.shutdown()


def _wait_for_mail(client: Any, stop: Halt, deadline: float) -> bool:
    news = False
    while not stop.is_set():
        if _buffered(client):
            news = _read_line(client) or news
            continue
        left = deadline - time.monotonic()
        if news or left <= 0:
            return news  # with every line received so far read
        # Woken by the server or by the stop pipe; only the server's line is read.
        if _readable(client.socket(), left, stop) and not stop.is_set():
            news = _read_line(client) or news
    return news


def _read_line(client: Any) -> bool:
    """One line the server sent during IDLE; True when it announces mail. Read here, not by
    imapclient's ``idle_check``: that returns nothing for a closed connection (it reads an
    EOF as "no more lines") and waits on the socket past lines imaplib has buffered."""
    line = client._imap.readline()
    if not line:
        raise ConnectionError("the server closed the connection")
    if _BYE.match(line):
        raise ConnectionError(f"the server ended the session: {line.decode(errors='replace')}")
    match = _NEW_MAIL.match(line)
    return match is not None and (match.group(2).upper() == b"EXISTS" or match.group(1) != b"0")


def _announces_mail(response: Any) -> bool:
    """A response parsed by imapclient, e.g. ``(3, b'EXISTS')``."""
    return (
        isinstance(response, tuple)
        and len(response) >= 2
        and (response[1] == b"EXISTS" or (response[1] == b"RECENT" and response[0] != 0))
    )


def _buffered(client: Any) -> bool:
    """Data already read from the socket (by imaplib's reader or the TLS layer)."""
    sock = client.socket()
    if isinstance(sock, ssl.SSLSocket) and sock.pending():
        return True
    reader = client._imap.file
    timeout = sock.gettimeout()
    sock.setblocking(False)
    try:
        return bool(reader.peek(1))  # what is buffered, or one read that cannot wait
    except (OSError, ValueError):
        return False  # nothing to read yet (BlockingIOError, SSLWantReadError)
    finally:
        sock.settimeout(timeout)


def _readable(sock: socket.socket, timeout: float, stop: Halt) -> bool:
    """The socket (or the stop pipe) has something to read within ``timeout``."""
    poller = select.poll()
    poller.register(sock.fileno(), select.POLLIN | select.POLLPRI)
    poller.register(stop.fileno(), select.POLLIN)
    return bool(poller.poll(timeout * 1000))


def _keepalive(sock: socket.socket) -> None:
    """Let the kernel probe an idle link: a peer gone without a FIN shows up as an error on
    the socket after about 90 s instead of at the next re-IDLE."""
    with suppress(OSError, AttributeError):
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPIDLE, 60)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPINTVL, 10)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPCNT, 3)
