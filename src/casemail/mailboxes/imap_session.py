"""An IMAP session for mailbox sync: connect, TLS, log in, and failures in plain words.

Connecting and logging in are the connection test's own steps (``conntest_imap``): the same
security rules (STARTTLS only when offered, never on in plain text instead, no LOGIN where
the server refuses it) and the same wording of what went wrong. Every command after that
runs inside ``talking()``, which turns a broken connection, a timeout or a refusal into a
``MailboxError`` that names the server, what casemail was doing, and why it stopped.
"""

from __future__ import annotations

import logging
import ssl
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from typing import Any

from imapclient.exceptions import IMAPClientAbortError, IMAPClientError

from casemail.accounts.conntest_common import CheckFailed, server_words, tls_context, where
from casemail.accounts.conntest_imap import _close, _login, _reply_words, _starttls, open_imap
from casemail.accounts.endpoint import Endpoint
from casemail.mailboxes.errors import MailboxError

log = logging.getLogger("casemail.mailboxes")

# What a dropped or failing connection raises: imaplib's error/abort (IMAPClientError and
# its subclass), socket and TLS errors (OSError, TimeoutError), and EOF.
IMAP_FAILURES = (IMAPClientError, OSError, EOFError)


@contextmanager
def imap_session(endpoint: Endpoint) -> Iterator[Any]:
    """A logged-in IMAPClient (UIDs, not sequence numbers). Ends with LOGOUT; after a
    failure the socket is only closed, since a broken session cannot say goodbye."""
    client = connect(endpoint)
    try:
        yield client
    except BaseException:
        with suppress(*IMAP_FAILURES):
            client.shutdown()
        raise
    _close(client)


def connect(endpoint: Endpoint) -> Any:
    try:
        context = tls_context(endpoint)
        client = open_imap(endpoint, context)
        try:
            if endpoint.security == "starttls":
                _starttls(client, endpoint, context)
            _login(client, endpoint)
        except BaseException:
            with suppress(*IMAP_FAILURES):
                client.shutdown()
            raise
    except CheckFailed as failed:
        raise MailboxError(failed.message) from failed
    # imapclient keeps the capabilities it saw before login; servers announce more after
    # it (RFC 3501 section 6.2.3: MOVE, IDLE, UIDPLUS often appear only then).
    client._cached_capabilities = None
    return client


def capabilities(client: Any, endpoint: Endpoint) -> frozenset[str]:
    with talking(endpoint, "asking for the server's capabilities"):
        return frozenset(server_words(c).upper() for c in client.capabilities())


@contextmanager
def talking(endpoint: Endpoint, doing: str) -> Iterator[None]:
    """Run IMAP commands; a failure becomes a MailboxError. Keep database work outside."""
    try:
        yield
    except MailboxError:
        raise
    except IMAP_FAILURES as exc:
        raise MailboxError(f"IMAP {where(endpoint)}: {doing}: {reason(exc, endpoint)}") from exc


def reason(exc: BaseException, endpoint: Endpoint) -> str:
    if isinstance(exc, TimeoutError):
        return f"no answer within {endpoint.read_timeout:g} s, so the connection was closed"
    broken = (IMAPClientAbortError, ConnectionError, EOFError, ssl.SSLEOFError)
    if isinstance(exc, broken):
        return f"the connection broke ({server_words(str(exc)) or type(exc).__name__})"
    if isinstance(exc, IMAPClientError):
        return f"the server refused: {_reply_words(str(exc))}"
    assert isinstance(exc, OSError)
    return f"network error: {exc.strerror or server_words(str(exc)) or type(exc).__name__}"
