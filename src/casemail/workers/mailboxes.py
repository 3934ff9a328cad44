"""Keeps every mailbox fetched. IMAP accounts whose server offers IDLE (RFC 2177) get a
watcher that syncs as soon as mail arrives; the others are polled at their interval.

Accounts run side by side, so one slow or failing account never holds up the others.
Failures are recorded on the account (state, words, back-off) by the runner; a watcher
that fails ends, and the account is picked up again when its back-off has passed.

A watcher runs with the settings it started with, so every pass also compares the watched
accounts with the database: one that was changed (``updated_at``, e.g. new folders, server
or password) or moved to another channel is restarted at once; one that was deactivated,
deleted or lost its channel is stopped. An OAuth2 account's access token is refreshed
before it expires and the watcher restarted with the new one (a reconnect inside a watcher
would otherwise try the old token); if the refresh fails, the watcher stops and the account
comes back through its back-off.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select

from casemail.bootstrap import AppContext
from casemail.db.engine import Database
from casemail.db.models import Account, Channel
from casemail.db.types import utcnow
from casemail.mailboxes import imap_idle
from casemail.mailboxes.fence import Fence, LeaseLost
from casemail.mailboxes.imap_idle import IdleUnsupported, idle_imap
from casemail.mailboxes.job import MailboxJob
from casemail.mailboxes.runner import (
    build_job,
    due_accounts,
    record_failure,
    record_success,
    sync_account,
    sync_now,
)
from casemail.oauth.tokens import TokenError, ensure_access_token, refresh_due
from casemail.workers.leases import balance

log = logging.getLogger("casemail.mailboxes")

# How often the database is asked which accounts are due. An account is fetched again
# ``poll_interval_seconds`` after its last sync ended, so this is what a poll can be late
# by (a coarser pass, e.g. 5 s, turned a 5 s interval into 10 s); also how soon "sync now"
# and a new account are picked up.
DUE_CHECK_SECONDS = 1.0


@dataclass(frozen=True)
class _Watched:
    """What a watcher was started with; a watcher whose account no longer matches ends."""

    updated_at: datetime
    channel_id: int
    poll_seconds: float  # the account's interval: for its folders beyond the first
    # OAuth2: the access token it logged in with expires then; a refresh restarts it, so
    # a reconnect inside the watcher never tries an expired token.
    token_expires_at: datetime | None = None
    token_refreshed_at: datetime | None = None


def _watched(db: Database, account_ids: list[int]) -> dict[int, _Watched]:
    """The accounts among ``account_ids`` that are still to be fetched (active, with an
    active channel, as in ``due_accounts``), as they are now."""
    found: dict[int, _Watched] = {}
    with db.read() as session:
        rows = session.execute(
            select(
                Account.id,
                Account.updated_at,
                Account.settings,
                Channel.id,
                Account.oauth_expires_at,
                Account.oauth_refreshed_at,
            )
            .join(Channel, Channel.account_id == Account.id)
            .where(
                Account.id.in_(account_ids),
                Account.incoming_active.is_(True),
                Account.deactivated_at.is_(None),
                Channel.active.is_(True),
            )
            .order_by(Account.id, Channel.id)
        )
        for account_id, updated_at, settings, channel_id, expires_at, refreshed_at in rows:
            incoming = settings.get("incoming") or {}
            found.setdefault(
                account_id,
                _Watched(
                    updated_at=updated_at,
                    channel_id=channel_id,
                    poll_seconds=float(incoming.get("poll_interval_seconds", 60)),
                    token_expires_at=expires_at,
                    token_refreshed_at=refreshed_at,
                ),
            )
    return found


def _refresh_expiring_tokens(ctx: AppContext, watched: dict[int, _Watched]) -> list[int]:
    """Refresh the tokens of watched OAuth2 accounts before they expire (the watcher then
    restarts with the new one); a refresh that fails is recorded on the account. Returns
    the accounts whose refresh failed."""
    now = utcnow()
    failed: list[int] = []
    for account_id, started in watched.items():
        expires_at = started.token_expires_at
        if expires_at is None or not refresh_due(expires_at, started.token_refreshed_at, now):
            continue
        try:
            ensure_access_token(ctx.db, ctx.keys, account_id)
        except TokenError as exc:
            record_failure(ctx.db, account_id, exc)
            failed.append(account_id)
    return failed


class _Mailboxes:
    def __init__(
        self, ctx: AppContext, stop: asyncio.Event, *, idle_seconds: float, leased: bool
    ) -> None:
        self.ctx = ctx
        self.stop = stop
        self.idle_seconds = idle_seconds  # how long one IDLE lasts before it is restarted
        # Syncs running at once in this process (CASEMAIL_WORKER_CONCURRENCY, --concurrency).
        self.slots = asyncio.Semaphore(ctx.settings.worker_concurrency)
        # Watchers connecting and catching up at once (each in its own thread); the rest
        # wait for a slot, so a worker given hundreds of mailboxes ramps up instead of
        # opening every connection in the same second.
        self.openings = threading.BoundedSemaphore(ctx.settings.worker_concurrency)
        self.running: dict[int, asyncio.Task[None]] = {}
        self.watchers: dict[int, tuple[asyncio.Event, _Watched]] = {}  # its own stop event
        self.restart: set[int] = set()  # watchers ended because their account changed
        self.no_idle: dict[int, _Watched] = {}  # servers that said they have no IDLE
        # Leased mailboxes (a registered worker): account -> fencing token of its lease,
        # as of the last pass; every run's writes carry it. None: no leases (all mailboxes).
        self.tokens: dict[int, int] | None = {} if leased else None
        self.watching_with: dict[int, int] = {}  # account -> token its watcher started with

    def start_due(self, due: list[int]) -> None:
        for account_id in [i for i, t in self.running.items() if t.done()]:
            self.running.pop(account_id)
        for account_id in due:
            if account_id not in self.running:
                self.running[account_id] = asyncio.create_task(self._serve(account_id))

    async def check_watchers(self) -> None:
        """End the watchers whose account changed (restarted at the next pass) or is no
        longer to be fetched."""
        if not self.watchers:
            return
        watching = {account_id: watched for account_id, (_, watched) in self.watchers.items()}
        failed = await asyncio.to_thread(_refresh_expiring_tokens, self.ctx, watching)
        now = await asyncio.to_thread(_watched, self.ctx.db, list(self.watchers))
        for account_id, (halt, started) in list(self.watchers.items()):
            current = now.get(account_id)
            if halt.is_set() or (current == started and account_id not in failed):
                continue
            if current is None or account_id in failed:
                # No longer fetched, or no token to log in with again: the watcher ends and
                # the account comes back through its back-off.
                log.info("account %s is no longer fetched: its watcher stops", account_id)
            else:
                log.info("account %s was changed: its watcher restarts", account_id)
                self.restart.add(account_id)
            halt.set()

    def fence(self, account_id: int) -> Fence | None:
        if self.tokens is None:
            return None
        return Fence(account_id, self.tokens.get(account_id, 0))

    def halt_unowned(self, owned: dict[int, int]) -> None:
        """Watchers of mailboxes another worker owns now (handed over, or taken after this
        worker's leases expired) stop, and those whose lease changed hands since they
        started (their writes would be refused); a sync already running finishes, or ends at
        its next write with ``LeaseLost``."""
        self.tokens = owned
        for account_id, (halt, _started) in self.watchers.items():
            if owned.get(account_id) != self.watching_with.get(account_id) and not halt.is_set():
                log.info("account %s: another worker owns it now: its watcher stops", account_id)
                halt.set()

    def busy(self) -> set[int]:
        """The mailboxes this worker is watching or syncing: their leases are kept."""
        running = {i for i, task in self.running.items() if not task.done()}
        return running | set(self.watchers)

    def halt_all(self) -> None:
        for halt, _started in self.watchers.values():
            halt.set()

    async def _serve(self, account_id: int) -> None:
        db = self.ctx.db
        try:
            # Read before the job is built: a change in between restarts the watcher.
            watched = (await asyncio.to_thread(_watched, db, [account_id])).get(account_id)
            fence = self.fence(account_id)
            job = await asyncio.to_thread(build_job, self.ctx, account_id, fence=fence)
        except Exception as exc:  # noqa: BLE001 - e.g. its channel was just deactivated
            await asyncio.to_thread(record_failure, db, account_id, exc)
            return
        if watched is None:
            return  # deactivated since it was found due
        if job.endpoint.protocol == "imap" and self.no_idle.get(account_id) != watched:
            await self._watch(account_id, job, watched)
        else:
            await self._poll(account_id)

    async def _watch(self, account_id: int, job: MailboxJob, watched: _Watched) -> None:
        """IDLE until stopped; every sync it runs records the account's health."""
        db = self.ctx.db
        if self.stop.is_set():
            return  # halt_all has run: a watcher registered now would never be stopped
        halt = asyncio.Event()
        self.watchers[account_id] = (halt, watched)
        if job.fence is not None:
            self.watching_with[account_id] = job.fence.token
        unsupported = False
        try:
            await idle_imap(
                job,
                halt,
                max_idle_seconds=self.idle_seconds,
                poll_seconds=watched.poll_seconds,
                on_wake=lambda: record_success(db, account_id),
                opening=self.openings,
            )
        except IdleUnsupported:
            unsupported = True
            self.no_idle[account_id] = watched  # polled until the account's settings change
        except LeaseLost as lost:
            log.info("%s", lost)  # the new owner fetches it; nothing to record here
        except Exception as exc:  # noqa: BLE001 - recorded; retried after the back-off
            await asyncio.to_thread(record_failure, db, account_id, exc)
        finally:
            self.watchers.pop(account_id, None)
            self.watching_with.pop(account_id, None)
        if unsupported:
            await self._poll(account_id)
        if account_id in self.restart:
            self.restart.discard(account_id)
            await asyncio.to_thread(sync_now, db, account_id)  # due at the next pass

    async def _poll(self, account_id: int) -> None:
        async with self.slots:
            try:
                fence = self.fence(account_id)
                report = await asyncio.to_thread(sync_account, self.ctx, account_id, fence=fence)
            except Exception as exc:  # noqa: BLE001 - recorded on the account by the runner
                log.debug("account %s sync failed: %s", account_id, exc)
                return
        if report.stored:
            log.info(
                "account %s: %s new (%s quarantined)", account_id, report.stored, report.quarantined
            )

    async def wait_all(self) -> None:
        self.halt_all()
        if self.running:
            await asyncio.gather(*self.running.values(), return_exceptions=True)


async def poll_mailboxes(
    ctx: AppContext,
    stop: asyncio.Event,
    *,
    idle_seconds: float | None = None,
    worker_id: str | None = None,
) -> None:
    """Until ``stop`` is set. ``idle_seconds``: how often IDLE is restarted; default
    ``imap_idle.IDLE_RESTART_SECONDS`` (read at the start, so tests can shorten it).
    ``worker_id``: this registered worker fetches only the mailboxes it holds the lease of
    (``workers.leases``); without one, all of them."""
    interval = min(ctx.settings.worker_interval_seconds, DUE_CHECK_SECONDS)
    if idle_seconds is None:
        idle_seconds = imap_idle.IDLE_RESTART_SECONDS
    mailboxes = _Mailboxes(ctx, stop, idle_seconds=idle_seconds, leased=worker_id is not None)
    while not stop.is_set():
        try:
            due = await asyncio.to_thread(due_accounts, ctx.db)
        except Exception:
            log.exception("could not read which mailboxes are due")
            due = []
        if worker_id is not None:
            due = await _owned_only(ctx, worker_id, mailboxes, due)
        try:
            await mailboxes.check_watchers()
        except Exception:
            log.exception("could not compare the watched mailboxes with their accounts")
        mailboxes.start_due(due)
        try:
            await asyncio.wait_for(stop.wait(), timeout=interval)
        except TimeoutError:
            continue
    await mailboxes.wait_all()


async def _owned_only(
    ctx: AppContext, worker_id: str, mailboxes: _Mailboxes, due: list[int]
) -> list[int]:
    """Renew and take leases; the due mailboxes this worker owns. If the leases cannot be
    read (database away), nothing new starts: another worker may own them."""
    try:
        owned = await asyncio.to_thread(balance, ctx.db, worker_id, set(due) | mailboxes.busy())
    except Exception:
        log.exception("could not renew the mailbox leases")
        return []
    mailboxes.halt_unowned(owned)
    return [account_id for account_id in due if account_id in owned]
