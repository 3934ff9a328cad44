"""What casemail tells an IMAP server about a message once it is stored: nothing (the
default: the mailbox is left exactly as it was), the \\Seen flag, or a move to a folder.

Only ever for messages whose raw bytes are committed (``store_fetched`` returned). A move
is UID MOVE (RFC 6851) where the server offers it, else UID COPY, \\Deleted and UID EXPUNGE
of exactly those UIDs (RFC 4315 section 2.1). Never a plain EXPUNGE: it would also remove
every message another client has marked \\Deleted.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from imapclient import DELETED, SEEN

from casemail.accounts.endpoint import Endpoint
from casemail.mailboxes.errors import MailboxError
from casemail.mailboxes.imap_session import capabilities, talking
from casemail.mailboxes.job import MailboxJob

log = logging.getLogger("casemail.mailboxes")


@dataclass(frozen=True)
class AfterFetch:
    """The post-processing of one session, checked against the server before any fetch."""

    action: str  # "none", "seen" or "move"
    endpoint: Endpoint
    move_to: str | None = None
    has_move: bool = False

    @classmethod
    def for_job(cls, client: Any, job: MailboxJob) -> AfterFetch:
        if job.after_fetch != "move":
            return cls(job.after_fetch, job.endpoint)
        target = job.move_to
        if not target:
            raise MailboxError("after_fetch is 'move' but no folder to move to is set")
        if target in job.endpoint.folders:
            raise MailboxError(
                f"after_fetch moves messages to {target!r}, which is also a folder casemail "
                "fetches from: choose another folder"
            )
        offered = capabilities(client, job.endpoint)
        if "MOVE" not in offered and "UIDPLUS" not in offered:
            raise MailboxError(
                f"the server offers neither MOVE (RFC 6851) nor UIDPLUS (RFC 4315), so "
                f"casemail cannot move messages to {target!r} without also expunging what "
                "other clients deleted: set after_fetch to 'seen' or 'none'"
            )
        return cls("move", job.endpoint, target, "MOVE" in offered)

    @property
    def writes(self) -> bool:
        """Whether folders must be opened read-write (SELECT, not EXAMINE)."""
        return self.action != "none"

    def apply(self, client: Any, folder: str, uids: list[int]) -> None:
        """Post-process messages that are stored (committed) already."""
        if not uids or self.action == "none":
            return
        if self.action == "seen":
            with talking(self.endpoint, f"flagging {len(uids)} stored messages in {folder} seen"):
                client.add_flags(uids, [SEEN], silent=True)
            return
        self._move(client, folder, uids)

    def _move(self, client: Any, folder: str, uids: list[int]) -> None:
        assert self.move_to is not None
        doing = f"moving {len(uids)} stored messages from {folder} to {self.move_to}"
        with talking(self.endpoint, doing):
            if self.has_move:
                client.move(uids, self.move_to)
            else:
                client.copy(uids, self.move_to)
                client.add_flags(uids, [DELETED], silent=True)
                client.uid_expunge(uids)
        log.debug("moved %s messages from %s to %s", len(uids), folder, self.move_to)
