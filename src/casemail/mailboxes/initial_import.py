"""The initial import: what the first sync of a folder does with the mail already in it.

The account's ``initial_import`` setting:

- ``all`` (the default): every message becomes a case, like any new mail.
- ``archive``: the messages already there are stored as archive (``Source.archive``): their
  cases open closed and nothing is sent for them (no acknowledgement, no notification).
  Mail that arrives after the first sync is normal mail.
- ``from_now``: the messages already there are left alone: never fetched, never stored,
  never removed from the server. Only mail that arrives after the first sync is fetched.

"Already there" is decided once per folder, at its first sync, and kept in the database, so
an import that breaks off resumes with the same split and a mode changed later does not
re-decide a folder that has been imported:

- IMAP: the highest UID the folder can hold at the first SELECT, UIDNEXT - 1 (new mail
  always gets a higher UID, RFC 3501 section 2.3.1.1). ``from_now`` starts the folder's
  high-water mark there; ``archive`` keeps it as ``import_until_uid`` and stores every UID
  up to it as archive. A later UIDVALIDITY change is not a first sync (the mailbox was
  imported already): the folder is read again as normal mail, and what was stored before is
  recognised by Message-ID and content.
- POP3: every UIDL listed at the first sync is marked on ``mailbox_items`` (``skip`` or
  ``archive``) in the same transaction that records the decision. A server without UIDL
  names a message only by its content, after RETR, so such messages are marked as the first
  run reaches them, and the decision counts as made once a first run has seen them all.

"Reset mailbox counter" (``runner.reset_counter``) asks for everything to be downloaded
again, so it records the decision as made with nothing to skip or archive: the re-download
is ``all``. Messages a ``from_now`` import left alone become normal cases then; the ones
already stored are recognised by Message-ID and content and not stored twice.
"""

from __future__ import annotations

from casemail.db.models import MailboxFolder
from casemail.mailboxes.job import InitialImport

# mailbox_items.import_as for POP3 messages on the server at the first sync.
IMPORT_AS: dict[str, str] = {"archive": "archive", "from_now": "skip"}


def first_sync_imap(row: MailboxFolder, mode: InitialImport, existing_until: int) -> None:
    """Decide the initial import of an IMAP folder, once, inside the transaction that
    records its first UIDVALIDITY. ``existing_until`` is UIDNEXT - 1 of that SELECT."""
    row.import_until_uid = 0
    if mode == "from_now":
        row.last_uid = max(row.last_uid, existing_until)  # as if all of it were fetched
    elif mode == "archive":
        row.import_until_uid = existing_until
