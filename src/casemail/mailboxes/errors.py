"""Why a mailbox sync stopped, in plain words: the message becomes the account's last error
(API and CLI), so it names the server and what happened, never a secret."""

from __future__ import annotations


class MailboxError(Exception):
    """A sync of one mailbox could not finish; ``str(error)`` says why, for the admin."""
