"""What one POP3 run does with each message on the server, from what casemail holds of it:
fetch it (as normal mail, or as archive for the initial import), leave it alone, and whether
retention removes it. The POP3 conversation itself is ``pop3_sync``'s.

Only a stored message is ever removed: never one the initial import left alone, which the
server holds the only copy of.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from casemail.mailboxes.job import InitialImport, MailboxJob, SyncReport
from casemail.mailboxes.pop3_items import mark_existing, uidl_states
from casemail.mailboxes.retention import chunks, deleted_case_uidls, expired_uidls
from casemail.mailboxes.store import folder_state

FOLDER = "INBOX"  # POP3 knows one mailbox (RFC 1939 section 1)


@dataclass
class Plan:
    job: MailboxJob
    report: SyncReport
    known: set[str] = field(default_factory=set)  # not to fetch: stored, or skipped
    skipped: set[str] = field(default_factory=set)  # left alone by the initial import
    archive: set[str] = field(default_factory=set)  # to store as archive (initial import)
    expired: set[str] = field(default_factory=set)  # stored more than N days ago
    deleted: set[str] = field(default_factory=set)  # stored, and their case was deleted
    importing: InitialImport | None = None  # a first run deciding message by message

    def first_sync(self, named: list[str], *, every_one_named: bool) -> None:
        """At the mailbox's first sync, mark what is on the server for the initial import
        (see ``initial_import``). Messages without a UIDL are known only after RETR: they
        are marked as the run reaches them (``decide_one``), and the decision is recorded
        once the run has seen them all (``finish``)."""
        job = self.job
        if folder_state(job.db, job.account_id, FOLDER).import_until_uid is not None:
            return  # decided by an earlier run
        mode = job.initial_import
        self._mark(named, mode, decided=every_one_named)
        if not every_one_named:
            self.importing = mode

    def decide_one(self, uidl: str) -> None:
        """A first run on a server without UIDL: this message was there, mark it now."""
        if self.importing is None or uidl in self.known or uidl in self.archive:
            return
        self._mark([uidl], self.importing, decided=False)
        self.learn([uidl])

    def finish(self) -> None:
        """The run has seen every message: a first sync deciding one by one is decided."""
        if self.importing is not None:
            self._mark([], self.importing, decided=True)
            self.importing = None

    def _mark(self, uidls: list[str], mode: InitialImport, *, decided: bool) -> None:
        job = self.job
        marked = mark_existing(job.db, job.account_id, FOLDER, uidls, mode, decided=decided)
        if mode == "from_now":
            self.report.skipped += marked

    def learn(self, uidls: list[str]) -> None:
        """What casemail holds of ``uidls``, and which stored ones retention lets go."""
        job = self.job
        states = {
            uidl: state
            for chunk in chunks(uidls)
            for uidl, state in uidl_states(job.db, job.account_id, chunk).items()
        }
        stored = [uidl for uidl, state in states.items() if state == "stored"]
        self.known.update(uidl for uidl, state in states.items() if state != "archive")
        self.skipped.update(uidl for uidl, state in states.items() if state == "skip")
        self.archive.update(uidl for uidl, state in states.items() if state == "archive")
        if job.leave_on_server:
            days = job.delete_after_days
            self.expired.update(expired_uidls(job.db, job.account_id, stored, days=days))
            if job.delete_when_deleted:
                self.deleted.update(deleted_case_uidls(job.db, job.account_id, stored))

    def stored(self, uidl: str) -> None:
        self.known.add(uidl)
        self.archive.discard(uidl)

    def removable(self, uidl: str) -> bool:
        """Whether retention removes this message now (it is stored or skipped here)."""
        if uidl in self.skipped:
            return False  # never fetched: the server holds the only copy
        if not self.job.leave_on_server:
            return True
        return uidl in self.expired or uidl in self.deleted
