"""A real SMTP server (aiosmtpd) standing in for a provider's submission service.

Modes: ``starttls`` (plain text, STARTTLS offered, AUTH only after TLS as RFC 4954 section 4
recommends), ``tls`` (implicit TLS, RFC 8314) and ``plain`` (no TLS at all, AUTH allowed in
plain text). AUTH PLAIN and LOGIN check a password table; XOAUTH2 asks a TokenIssuer.
Accepted messages are recorded; some recipients and senders are refused on purpose.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import json
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, AuthResult, Envelope, LoginPassword, Session

from tests.conftest import free_port
from tests.mailservers.oauth import TokenIssuer
from tests.mailservers.pki import TestPKI

PeerMode = Literal["starttls", "tls", "plain"]
REFUSED_DOMAIN = "refused.test"  # RCPT TO any address here gets 550
REFUSED_RECIPIENT_REPLY = "550 5.1.1 Recipient address rejected: User unknown in local table"
REFUSED_SENDER_REPLY = "553 5.7.1 Sender address rejected: not owned by user"


@dataclass(frozen=True)
class ReceivedMessage:
    mail_from: str
    rcpt_tos: tuple[str, ...]
    data: bytes
    login: str | None
    accepted_at: float = 0.0  # time.monotonic() when the 250 was given


@dataclass
class PeerState:
    passwords: dict[str, str] = field(default_factory=dict)
    refused_senders: set[str] = field(default_factory=set)
    received: list[ReceivedMessage] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)
    # Replies to the next DATA commands, in order, instead of accepting ("451 4.3.0 ...").
    data_script: list[str] = field(default_factory=list)
    # Seconds the next DATA command waits before it answers (then takes the script or 250).
    data_stalls: list[float] = field(default_factory=list)
    data_commands: int = 0


class _Handler:
    def __init__(self, state: PeerState, tokens: TokenIssuer) -> None:
        self.state = state
        self.tokens = tokens

    async def handle_MAIL(
        self, server: SMTP, session: Session, envelope: Envelope, address: str, options: Any
    ) -> str:
        if address in self.state.refused_senders:
            return REFUSED_SENDER_REPLY
        envelope.mail_from = address
        envelope.mail_options.extend(options)
        return "250 2.1.0 Ok"

    async def handle_RCPT(
        self, server: SMTP, session: Session, envelope: Envelope, address: str, options: Any
    ) -> str:
        if address.lower().endswith("@" + REFUSED_DOMAIN):
            return REFUSED_RECIPIENT_REPLY
        envelope.rcpt_tos.append(address)
        return "250 2.1.5 Ok"

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        with self.state.lock:
            self.state.data_commands += 1
            stall = self.state.data_stalls.pop(0) if self.state.data_stalls else 0.0
            scripted = self.state.data_script.pop(0) if self.state.data_script else None
        if stall:
            await asyncio.sleep(stall)
        if scripted is not None:
            return scripted  # refused or deferred: not received
        received = ReceivedMessage(
            mail_from=str(envelope.mail_from),
            rcpt_tos=tuple(envelope.rcpt_tos),
            data=bytes(envelope.original_content or b""),
            login=getattr(session.auth_data, "username", None),
            accepted_at=time.monotonic(),
        )
        with self.state.lock:
            self.state.received.append(received)
            number = len(self.state.received)
        return f"250 2.0.0 Ok: queued as TEST{number:04d}"

    async def auth_XOAUTH2(self, server: SMTP, args: list[str]) -> AuthResult:
        """Google's XOAUTH2: base64("user=U^Aauth=Bearer T^A^A"); on failure a 334 with a
        JSON error, answered by an empty line, then 535."""
        if len(args) > 1:
            blob: Any = _b64(args[1])
        else:
            blob = await server.challenge_auth("")
        fields = dict(
            part.split("=", 1) for part in bytes(blob or b"").decode().split("\x01") if "=" in part
        )
        user, token = fields.get("user", ""), fields.get("auth", "").removeprefix("Bearer ")
        if user and self.tokens.username_for(token) == user:
            return AuthResult(success=True, auth_data=_Login(user))
        error = {"status": "401", "schemes": "Bearer", "scope": "https://mail.test/"}
        await server.challenge_auth(json.dumps(error))
        return AuthResult(
            success=False, handled=False, message="535 5.7.8 Username and Password not accepted"
        )


@dataclass(frozen=True)
class _Login:
    username: str


def _b64(text: str) -> bytes | None:
    try:
        return base64.b64decode(text, validate=True)
    except binascii.Error:
        return None


class SmtpPeer:
    """An aiosmtpd server on a free loopback port; ``start()``/``stop()``."""

    host = "127.0.0.1"

    def __init__(
        self,
        pki: TestPKI,
        tokens: TokenIssuer,
        *,
        mode: PeerMode,
        cert: tuple[Path, Path] | None = None,
    ) -> None:
        """``cert``: another (certificate, key) pair, e.g. one for a different host name."""
        self.mode = mode
        self.port = free_port()
        self.state = PeerState()
        self.pki = pki
        tls: dict[str, Any] = {}
        if mode == "starttls":
            tls = {"tls_context": pki.server_context(cert), "auth_require_tls": True}
        elif mode == "tls":
            tls = {"ssl_context": pki.server_context(cert), "auth_require_tls": False}
        else:
            tls = {"auth_require_tls": False}
        self._controller = Controller(
            _Handler(self.state, tokens),
            hostname=self.host,
            port=self.port,
            server_hostname="smtp.mail.test",
            authenticator=self._authenticate,
            **tls,
        )

    def start(self) -> None:
        self._controller.start()

    def stop(self) -> None:
        self._controller.stop()

    def add_login(self, username: str, password: str) -> None:
        self.state.passwords[username] = password

    def refuse_sender(self, address: str) -> None:
        self.state.refused_senders.add(address)

    def answer_next_data(self, *replies: str) -> None:
        """The next DATA commands get these replies (e.g. "451 4.3.0 Try again later")."""
        with self.state.lock:
            self.state.data_script.extend(replies)

    def stall_next_data(self, seconds: float, reply: str) -> None:
        """The next DATA waits ``seconds``, then answers ``reply`` and keeps nothing, as a
        server that hangs after the final dot and fails does."""
        with self.state.lock:
            self.state.data_stalls.append(seconds)
            self.state.data_script.append(reply)

    def slow_next_data(self, seconds: float, count: int = 1) -> None:
        """The next ``count`` DATA commands wait ``seconds``, then accept as usual."""
        with self.state.lock:
            self.state.data_stalls.extend([seconds] * count)

    @property
    def data_commands(self) -> int:
        with self.state.lock:
            return self.state.data_commands

    @property
    def received(self) -> list[ReceivedMessage]:
        with self.state.lock:
            return list(self.state.received)

    def _authenticate(
        self, server: SMTP, session: Session, envelope: Envelope, mechanism: str, data: Any
    ) -> AuthResult:
        if not isinstance(data, LoginPassword):
            return AuthResult(success=False, handled=False)
        login, password = data.login.decode(), data.password.decode()
        ok = self.state.passwords.get(login) == password
        return AuthResult(success=ok, handled=False, auth_data=_Login(login) if ok else None)
