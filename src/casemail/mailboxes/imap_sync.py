"""IMAP inbound sync: fetch by UID, store first, then (optionally) tell the server.

One run, per folder of the account:

1. SELECT the folder (EXAMINE, read-only, when nothing is to be changed on the server) and
   read its UIDVALIDITY (RFC 3501 section 2.3.1.1). A new one restarts the folder at UID 0:
   everything is fetched again and what is stored already is recognised by its content.
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
from collections.abc import Iterator
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

    def sync(self) -> None:
        self._open()
        state = folder_state(self.job.db, self.job.account_id, self.name)
        todo = self._new_uids(state.last_uid)
        self.done, self.total = state.messages_done, state.messages_done + len(todo)
        planned = self.total
        set_progress(self.job.db, self.job.account_id, self.name, total=planned)
        self._progress()
        for batch in chunks(todo, self.job.batch_size):
            if not self._batch(batch):
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
        self.report.folders[self.name] = int(info.get(b"EXISTS", 0))
        job = self.job
        if start_uidvalidity(job.db, job.account_id, self.name, uidvalidity):
            log.warning(
                "account %s: UIDVALIDITY of %s changed to %s: fetching it again; messages "
                "stored already are recognised by their content",
                job.account_id,
                self.name,
                uidvalidity,
            )
            self.report.uidvalidity_changed.append(self.name)

    def _new_uids(self, last_uid: int) -> list[int]:
        with talking(self.job.endpoint, f"searching {self.name} for new messages"):
            found = self.client.search(["UID", f"{last_uid + 1}:*"])
        # RFC 3501 section 6.4.8: "n:*" always includes the highest UID, even below n.
        new = sorted(uid for uid in found if uid > last_uid)
        known = self._known(new)
        return [uid for uid in new if uid not in known]

    def _known(self, uids: list[int]) -> set[int]:
        job, known = self.job, set[int]()
        for part in chunks(uids, LOOKUP_CHUNK):
            known |= known_uids(job.db, job.account_id, self.name, self.uidvalidity, part)
        return known

    def _batch(self, uids: list[int]) -> bool:
        """Fetch and store one batch in UID order; False when a message must be waited for."""
        bodies = self._fetch(uids)
        ready: list[tuple[int, bytes]] = []
        for uid in uids:
            raw = bodies.get(uid)
            if raw is None:
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
        batch = [
            (Fetched(job.account_id, self.name, self.uidvalidity, uid), raw) for uid, raw in ready
        ]
        for result in store_fetched_batch(job.db, job.channel_id, batch, job.options):
            self.done += 1
            _count(self.report, result)

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


def _count(report: SyncReport, result: IngestResult) -> None:
    if result.outcome == "duplicate":
        report.duplicates += 1
        return
    report.stored += 1  # on a case, in quarantine, or committed and waiting for a retry
    if result.outcome == "quarantined":
        report.quarantined += 1
