"""Small helpers for tests: raw SMTP talk for what smtplib refuses to send, sample mail."""

from __future__ import annotations

import socket
from email.message import EmailMessage
from email.utils import make_msgid


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
