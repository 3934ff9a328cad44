"""POP3 commands on an open poplib session, read byte for byte.

poplib's own reader refuses lines over 2048 bytes (``error_proto('line too long')``), which
real mail has (unwrapped base64, long HTML lines): one such message would stop a mailbox for
good. So multi-line replies are read here, in pieces, with the byte-stuffing undone
(RFC 1939 section 3) and the line ends kept as the server sent them.
"""

from __future__ import annotations

import poplib
from contextlib import suppress

from casemail.accounts.conntest_common import server_words
from casemail.accounts.conntest_pop3 import _exchange

PIECE = 1 << 16  # bytes per read; a line may take several


class Refused(Exception):
    """The server answered -ERR; ``str(error)`` is its reply, as one line."""


def command(pop: poplib.POP3, line: bytes) -> bytes:
    """Send one command and return its +OK status line; -ERR raises Refused, a closed
    connection EOFError."""
    reply = _exchange(pop, line)
    if not reply.startswith(b"+OK"):
        raise Refused(server_words(reply))
    return reply


def multiline(pop: poplib.POP3) -> bytes:
    """The body of a multi-line reply (after its status line), up to the lone ".", exactly
    as sent but for the byte-stuffing."""
    parts: list[bytes] = []
    at_line_start = True
    while True:
        piece = pop.file.readline(PIECE)
        if not piece:
            raise EOFError("the server closed the connection")
        if at_line_start and piece in (b".\r\n", b".\n"):
            return b"".join(parts)
        if at_line_start and piece.startswith(b"."):
            piece = piece[1:]
        parts.append(piece)
        at_line_start = piece.endswith(b"\n")


def abandon(pop: poplib.POP3) -> None:
    """Close without QUIT: the session never reaches its UPDATE state (RFC 1939 section 6),
    so the server removes nothing."""
    with suppress(OSError):
        pop.close()
