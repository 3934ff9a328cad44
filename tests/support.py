"""Small helpers for tests: raw SMTP talk for what smtplib refuses to send, sample mail."""

from __future__ import annotations

import socket
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from email.message import EmailMessage
from email.utils import make_msgid
from typing import Any

from sqlalchemy import event
from sqlalchemy.orm import ORMExecuteState, Session

from casemail.db import Database


class RawSMTP:
    """A byte-exact SMTP client: sends exactly what it is given, reads whole replies."""

    def __init__(self, host: str, port: int, timeout: float = 10) -> None:
        self.sock = socket.create_connection((host, port), timeout=timeout)
        self.file = self.sock.makefile("rb")
        self.greeting = self.reply()

    def reply(self) -> tuple[int, str]:
        lines: list[str] = []
        while True:
            line = self.file.readline()
            if not line:
                break
            text = line.decode("utf-8", "replace").rstrip("\r\n")
            lines.append(text[4:])
            if text[3:4] != "-":
                return int(text[:3]), "\n".join(lines)
        return 0, "\n".join(lines)

    def command(self, line: bytes) -> tuple[int, str]:
        self.sock.sendall(line + b"\r\n")
        return self.reply()

    def send_raw(self, data: bytes) -> tuple[int, str]:
        self.sock.sendall(data)
        return self.reply()

    def close(self) -> None:
        self.file.close()
        self.sock.close()


def sample_message(
    *,
    sender: str = "Alice Example <alice@customer.example>",
    to: str = "support@example.com",
    subject: str = "Printer on fire",
    body: str = "Please help.\n",
    in_reply_to: str | None = None,
) -> EmailMessage:
    message = EmailMessage()
    message["From"] = sender
    message["To"] = to
    message["Subject"] = subject
    message["Message-ID"] = make_msgid(domain="customer.example")
    if in_reply_to:
        message["In-Reply-To"] = in_reply_to
        message["References"] = in_reply_to
    message.set_content(body)
    return message


def wire_bytes(message: EmailMessage) -> bytes:
    """The message as it travels in SMTP DATA: every line ended by CRLF (RFC 5321 2.3.8)."""
    return message.as_bytes(policy=message.policy.clone(linesep="\r\n"))


class FailingMessageWrites(Database):
    """Our ``Database`` on the same engine, whose writes fail when they would put a chosen
    message on a case — as a full disk, a dropped connection or a row the database refuses
    would, at the moment the decision is written. Storing the raw message still works.

    ``fails`` picks the ``messages`` rows to refuse; at most ``limit`` refusals (None: every
    time). The error is ``error`` formatted with the refusal's number as ``n``.
    """

    def __init__(
        self,
        db: Database,
        fails: Callable[[dict[str, Any]], bool],
        *,
        error: str,
        limit: int | None = None,
    ) -> None:
        super().__init__(db.engine)
        self.fails = fails
        self.error = error
        self.limit = limit
        self.raised = 0

    @contextmanager
    def write(self) -> Iterator[Session]:
        with super().write() as session:
            event.listen(session, "do_orm_execute", self._check)
            yield session

    def _check(self, state: ORMExecuteState) -> None:
        table = getattr(state.statement, "table", None)
        if not state.is_insert or getattr(table, "name", None) != "messages":
            return
        params = state.parameters
        rows = params if isinstance(params, list) else [params or {}]
        if any(self.fails(dict(row)) for row in rows if isinstance(row, Mapping)) and (
            self.limit is None or self.raised < self.limit
        ):
            self.raised += 1
            raise RuntimeError(self.error.format(n=self.raised))


def subject_says(word: str) -> Callable[[dict[str, Any]], bool]:
    return lambda row: word in (row.get("subject") or "")
