"""After sending: a copy in the account's Sent folder over IMAP (RFC 3501 section 6.3.11
APPEND, flagged \\Seen), for providers that do not file submitted mail themselves.

The copy is a courtesy: the message is sent either way, and a failed copy is recorded on
the outbox entry in plain words, never turned into a send failure (that would resend it).
"""

from __future__ import annotations

import logging
from typing import Any

from casemail.accounts.endpoint import Endpoint
from casemail.mailboxes.errors import MailboxError
from casemail.mailboxes.imap_session import IMAP_FAILURES, imap_session, reason

log = logging.getLogger("casemail.outbound")


def wanted_folder(settings: dict[str, Any]) -> str | None:
    """The Sent folder to copy to, or None when the account does not want copies."""
    outgoing = settings.get("outgoing") or {}
    incoming = settings.get("incoming") or {}
    if not outgoing.get("save_to_sent") or incoming.get("protocol") != "imap":
        return None
    folder = incoming.get("sent_folder")
    return str(folder) if folder else None


def append_to_sent(endpoint: Endpoint, folder: str, raw: bytes) -> str | None:
    """Append ``raw`` to ``folder`` (created if missing); returns None, or why it failed."""
    try:
        with imap_session(endpoint) as client:
            if not client.folder_exists(folder):
                client.create_folder(folder)
            client.append(folder, raw, flags=[b"\\Seen"])
    except MailboxError as exc:
        return f"copy to {folder} failed: {exc}"
    except IMAP_FAILURES as exc:
        return f"copy to {folder} failed: {reason(exc, endpoint)}"
    return None
