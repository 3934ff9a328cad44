"""What one sync run of one account needs, and what it reports. Plain data, so the IMAP
and POP3 code knows nothing of the API, the CLI or the scheduler."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Literal

from casemail.accounts.endpoint import Endpoint
from casemail.db.engine import Database
from casemail.ingest import IngestOptions

AfterFetch = Literal["none", "seen", "move"]


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
    batch_size: int = 100
    on_progress: Callable[[Progress], None] | None = None


@dataclass
class SyncReport:
    """Counts of one run; ``stored`` are new on a case or in quarantine."""

    stored: int = 0
    duplicates: int = 0
    quarantined: int = 0
    removed_from_server: int = 0
    folders: dict[str, int] = field(default_factory=dict)  # folder -> messages on server
    uidvalidity_changed: list[str] = field(default_factory=list)
