"""What one sync run of one account needs, and what it reports. Plain data, so the IMAP
and POP3 code knows nothing of the API, the CLI or the scheduler."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Literal

from casemail.accounts.endpoint import Endpoint
from casemail.db.engine import Database
from casemail.ingest import IngestOptions
from casemail.mailboxes.fence import Fence

AfterFetch = Literal["none", "seen", "move"]
# What a folder's first sync does with the mail already there (IncomingSettings).
InitialImport = Literal["all", "archive", "from_now"]


@dataclass(frozen=True)
class Progress:
    folder: str
    done: int
    total: int


@dataclass(frozen=True)
class MailboxJob:
    db: Database
    account_id: int
    channel_id: int
    endpoint: Endpoint  # protocol imap or pop3; folders from the account
    options: IngestOptions
    after_fetch: AfterFetch = "none"  # IMAP only
    move_to: str | None = None  # IMAP, after_fetch == "move"
    leave_on_server: bool = True  # POP3
    delete_after_days: int | None = None  # POP3, with leave_on_server
    delete_when_deleted: bool = False  # POP3, with leave_on_server: DELE deleted cases' mail
    initial_import: InitialImport = "all"  # at the first sync of each folder
    # Messages fetched and stored together: bigger batches mean fewer commits (measured in
    # bench/imap_sync.py), bounded in bytes so a mailbox of large messages stays in memory.
    batch_size: int = 500
    batch_bytes: int = 32 * 1024 * 1024
    on_progress: Callable[[Progress], None] | None = None
    # The worker's lease on this mailbox: its writes carry the token (``fence``); None for
    # runs outside the workers (``casemail sync``).
    fence: Fence | None = None


@dataclass
class SyncReport:
    """Counts of one run; ``stored`` are new on a case or in quarantine."""

    stored: int = 0
    duplicates: int = 0
    quarantined: int = 0
    removed_from_server: int = 0
    archived: int = 0  # of ``stored``: imported as archive (closed cases, nothing sent)
    skipped: int = 0  # left on the server unfetched: there before a "from_now" first sync
    folders: dict[str, int] = field(default_factory=dict)  # folder -> messages on server
    uidvalidity_changed: list[str] = field(default_factory=list)
