"""IMAP inbound sync: fetch by UID, store first, then (optionally) tell the server.

One run, per folder of the account:

1. SELECT the folder (EXAMINE, read-only, when nothing is to be changed on the server) and
   read its UIDVALIDITY (RFC 3501 section 2.3.1.1). A new one restarts the folder at UID 0:
   everything is fetched again and what is stored already is recognised by its content.
   At the folder's first sync, UIDNEXT decides the initial import (``initial_import``):
   what is there already is stored as archive, or skipped by starting after it.
2. UID SEARCH for the UIDs above the highest one committed. Never by \\Seen: a message read
   by another client is still new to casemail.
3. UID FETCH ``BODY.PEEK[]`` in batches (PEEK: fetching never sets \\Seen, RFC 3501 section
   6.4.5), and ``store_fetched`` each message, which commits it and advances the folder.
4. Only then, if the account asks for it, flag the stored messages \\Seen or move them.

A dropped connection raises ``MailboxError``; what was committed stays, and the next run
starts after the highest UID committed, so nothing is fetched twice or lost. Synchronous:
the caller runs it in a thread.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor, wait
from dataclasses import dataclass
from typing import Any

from casemail.ingest import IngestResult
from casemail.mailboxes.errors import MailboxError
from casemail.mailboxes.imap_after import AfterFetch
from casemail.mailboxes.imap_session import imap_session, talking
from casemail.mailboxes.job import MailboxJob, Progress, SyncReport
from casemail.mailboxes.store import (
    Fetched,
    folder_state,
    known_uids,
    set_progress,
    start_uidvalidity,
    store_fetched_batch,
)

log = logging.getLogger("casemail.mailboxes")

BODY = b"BODY[]"  # the answer to BODY.PEEK[] (RFC 3501 section 7.4.2)
LOOKUP_CHUNK = 500  # UIDs per "already stored?" query (SQLite allows 32,766 parameters)
SIZE_CHUNK = 5000  # UIDs per RFC822.SIZE fetch: keeps the command line short


def sync_imap(job: MailboxJob) -> SyncReport:
    """Fetch the new messages of every folder of the account; see the module docstring."""
    report = SyncReport()
    stalled: list[str] = []
    with imap_session(job.endpoint) as client:
        after = AfterFetch.for_job(client, job)
        for folder in job.endpoint.folders:
            run = _FolderRun(client, job, after, folder, report)
            run.sync()
            if run.stalled_at is not None:
                stalled.append(f"UID {run.stalled_at} in {folder}")
    log.info(
        "account %s: IMAP %s new, %s duplicates, %s quarantined",
        job.account_id,
        report.stored,
        report.duplicates,
        report.quarantined,
    )
    if stalled:
        raise MailboxError(
            f"the server returned no content for {', '.join(stalled)}; the "
            f"{report.stored} new messages before it are stored, and it is asked for again "
            "at the next run (newer messages in that folder wait behind it)"
        )
    return report


def size_batches(
    uids: list[int], sizes: dict[int, int], max_count: int, max_bytes: int
) -> list[list[int]]:
    """``uids`` in order, in batches of at most ``max_count`` messages and ``max_bytes``
    bytes; a message larger than ``max_bytes`` travels alone. Bounds the memory a batch
    takes (two batches are held at once while the next one is fetched ahead)."""
    batches: list[list[int]] = []
    current: list[int] = []
    used = 0
    for uid in uids:
        size = sizes.get(uid, 0)
        if current and (len(current) >= max_count or used + size > max_bytes):
            batches.append(current)
            current, used = [], 0
        current.append(uid)
        used += size
    if current:
        batches.append(current)
    return batches


def chunks(items: list[int], size: int) -> Iterator[list[int]]:
    for start in range(0, len(items), max(size, 1)):
        yield items[start : start + max(size, 1)]


@dataclass
class _FolderRun:
    client: Any
    job: MailboxJob
    after: AfterFetch
    name: str
    report: SyncReport
    uidvalidity: int = 0
    done: int = 0
    total: int = 0
    stalled_at: int | None = None
    archive_until: int = 0  # UIDs up to this one are stored as archive (initial import)

    def sync(self) -> None:
        self._open()
        state = folder_state(self.job.db, self.job.account_id, self.name)
        self.archive_until = state.import_until_uid or 0
        todo = self._new_uids(state.last_uid)
        self.done, self.total = state.messages_done, state.messages_done + len(todo)
        planned = self.total
        set_progress(self.job.db, self.job.account_id, self.name, total=planned)
        self._progress()
        batches = size_batches(todo, self._sizes(todo), self.job.batch_size, self.job.batch_bytes)
        with _Prefetcher(self._fetch, enabled=not self.after.writes) as fetcher:
            for index, batch in enumerate(batches):
                following = batches[index + 1] if index + 1 < len(batches) else None
                if not self._batch(batch, fetcher.get(batch, following), fetcher):
                    break
        if self.total != planned:  # some were removed from the server meanwhile
            set_progress(self.job.db, self.job.account_id, self.name, total=self.total)
        if self.after.action == "move" and self.stalled_at is None:
            self._move_leftovers()

    def _open(self) -> None:
        with talking(self.job.endpoint, f"opening the folder {self.name!r}"):
            info = self.client.select_folder(self.name, readonly=not self.after.writes)
        uidvalidity = info.get(b"UIDVALIDITY")
        if not isinstance(uidvalidity, int):
            raise MailboxError(f"the server sent no UIDVALIDITY for the folder {self.name!r}")
        self.uidvalidity = uidvalidity
        exists = self.report.folders[self.name] = int(info.get(b"EXISTS", 0))
        job = self.job
        started = start_uidvalidity(
            job.db,
            job.account_id,
            self.name,
            uidvalidity,
            initial=job.initial_import,
            existing_until=self._existing_until(info),
            fence=job.fence,
        )
        if started.decided == "from_now":
            self.report.skipped += exists  # all of them are below UIDNEXT
        if started.changed:
            log.warning(
                "account %s: UIDVALIDITY of %s changed to %s: fetching it again; messages "
                "stored already are recognised by their content",
                job.account_id,
                self.name,
                uidvalidity,
            )
            self.report.uidvalidity_changed.append(self.name)

    def _existing_until(self, info: dict[bytes, Any]) -> int:
        """The highest UID in the folder as it is now: UIDNEXT - 1 (every later message gets
        a higher UID). RFC 3501 section 6.3.1 requires UIDNEXT in the SELECT answer; for a
        server that leaves it out, the highest UID a search finds."""
        uidnext = info.get(b"UIDNEXT")
        if isinstance(uidnext, int):
            return uidnext - 1
        if self.job.initial_import == "all":
            return 0  # nothing depends on it
        with talking(self.job.endpoint, f"searching {self.name} for its highest UID"):
            return max(self.client.search(["ALL"]), default=0)

    def _new_uids(self, last_uid: int) -> list[int]:
        with talking(self.job.endpoint, f"searching {self.name} for new messages"):
            found = self.client.search(["UID", f"{last_uid + 1}:*"])
        # RFC 3501 section 6.4.8: "n:*" always includes the highest UID, even below n.
        new = sorted(uid for uid in found if uid > last_uid)
        known = self._known(new)
        return [uid for uid in new if uid not in known]

    def _sizes(self, uids: list[int]) -> dict[int, int]:
        """RFC822.SIZE of each message (RFC 3501 section 6.4.5), to bound a batch in bytes."""
        sizes: dict[int, int] = {}
        for part in chunks(uids, SIZE_CHUNK):
            with talking(self.job.endpoint, f"reading message sizes in {self.name}"):
                answer = self.client.fetch(part, [b"RFC822.SIZE"])
            for uid, data in answer.items():
                size = data.get(b"RFC822.SIZE")
                sizes[int(uid)] = size if isinstance(size, int) else 0
        return sizes

    def _known(self, uids: list[int]) -> set[int]:
        job, known = self.job, set[int]()
        for part in chunks(uids, LOOKUP_CHUNK):
            known |= known_uids(job.db, job.account_id, self.name, self.uidvalidity, part)
        return known

    def _batch(
        self, uids: list[int], bodies: dict[int, bytes | None], fetcher: _Prefetcher
    ) -> bool:
        """Store one fetched batch in UID order; False when a message must be waited for."""
        ready: list[tuple[int, bytes]] = []
        for uid in uids:
            raw = bodies.get(uid)
            if raw is None:
                fetcher.settle()  # _gone talks to the server: no fetch may be under way
                if not self._gone(uid):
                    self.stalled_at = uid
                    break
                self.total -= 1
                continue
            ready.append((uid, raw))
        self._store(ready)
        self.after.apply(self.client, self.name, [uid for uid, _ in ready])
        self._progress()
        return self.stalled_at is None

    def _fetch(self, uids: list[int]) -> dict[int, bytes | None]:
        doing = f"fetching {len(uids)} messages (UID {uids[0]} to {uids[-1]}) from {self.name}"
        with talking(self.job.endpoint, doing):
            response = self.client.fetch(uids, ["BODY.PEEK[]"])
        bodies: dict[int, bytes | None] = {}
        for uid in uids:
            body = response.get(uid, {}).get(BODY)
            bodies[uid] = body if isinstance(body, bytes) else None
        return bodies

    def _gone(self, uid: int) -> bool:
        """A message without content: removed by another client since the search (skip it),
        or one the server cannot deliver now (stop here, so the next run asks again)."""
        with talking(self.job.endpoint, f"looking for UID {uid} in {self.name}"):
            gone = not self.client.search(["UID", str(uid)])
        words = "was removed from the server before it could be fetched"
        if not gone:
            words = "came without content; it and the messages after it are fetched next run"
        log.warning("account %s: %s UID %s %s", self.job.account_id, self.name, uid, words)
        return gone

    def _store(self, ready: list[tuple[int, bytes]]) -> None:
        """Commit the batch (raw bytes, receipts, UIDs) before the server hears anything."""
        job = self.job
        batch = [(self._fetched(uid), raw) for uid, raw in ready]
        results = store_fetched_batch(job.db, job.channel_id, batch, job.options, fence=job.fence)
        for (fetched, _raw), result in zip(batch, results, strict=True):
            self.done += 1
            _count(self.report, result)
            if fetched.archive and result.outcome != "duplicate":
                self.report.archived += 1

    def _fetched(self, uid: int) -> Fetched:
        """Where the message came from; up to the initial import's mark it is archive."""
        job, archive = self.job, uid <= self.archive_until
        return Fetched(job.account_id, self.name, self.uidvalidity, uid, archive=archive)

    def _progress(self) -> None:
        if self.job.on_progress is not None:
            self.job.on_progress(Progress(self.name, self.done, self.total))

    def _move_leftovers(self) -> None:
        """Messages stored by an earlier run that broke off before it could move them."""
        last = folder_state(self.job.db, self.job.account_id, self.name).last_uid
        if last == 0:
            return
        with talking(self.job.endpoint, f"searching {self.name} for stored messages"):
            found = self.client.search(["UID", f"1:{last}", "UNDELETED"])
        leftovers = sorted(self._known([uid for uid in found if uid <= last]))
        for part in chunks(leftovers, self.job.batch_size):
            self.after.apply(self.client, self.name, part)


Fetch = Callable[[list[int]], dict[int, bytes | None]]


class _Prefetcher:
    """Fetches the next batch while the current one is being stored.

    Only when nothing else talks to the server between fetches (``after_fetch`` is
    ``none``): the connection is used by one thread at a time, the fetching thread while a
    fetch is under way, the caller only after ``settle``. A prefetched batch that is never
    used (the run stops early) was only read, never acknowledged, so nothing is lost.
    """

    def __init__(self, fetch: Fetch, *, enabled: bool) -> None:
        self._fetch = fetch
        self._pool = ThreadPoolExecutor(1, "imap-prefetch") if enabled else None
        self._ahead: tuple[list[int], Future[dict[int, bytes | None]]] | None = None

    def __enter__(self) -> _Prefetcher:
        return self

    def __exit__(self, *exc: object) -> None:
        try:
            self.settle()
        except Exception:  # the run is over; its own outcome stands
            log.debug("an unused prefetch failed", exc_info=True)
        if self._pool is not None:
            self._pool.shutdown(wait=True)

    def get(self, uids: list[int], following: list[int] | None) -> dict[int, bytes | None]:
        """The bodies of ``uids``; starts fetching ``following`` in the background."""
        ahead, self._ahead = self._ahead, None
        bodies = ahead[1].result() if ahead and ahead[0] == uids else self._fetch(uids)
        if self._pool is not None and following:
            self._ahead = (following, self._pool.submit(self._fetch, following))
        return bodies

    def settle(self) -> None:
        """Wait until no fetch is under way (its result is kept for ``get``)."""
        if self._ahead is not None:
            wait([self._ahead[1]])
            self._ahead[1].result()


def _count(report: SyncReport, result: IngestResult) -> None:
    if result.outcome == "duplicate":
        report.duplicates += 1
        return
    report.stored += 1  # on a case, in quarantine, or committed and waiting for a retry
    if result.outcome == "quarantined":
        report.quarantined += 1
