"""A real SMTP listener on free loopback ports, run in its own event loop thread."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from casemail.config import Settings
from casemail.db import Database
from casemail.listener.server import start_listeners
from tests.companysupport import globex  # noqa: F401 - a fixture for the tests here
from tests.conftest import free_port


@dataclass
class RunningListener:
    settings: Settings
    loop: asyncio.AbstractEventLoop
    servers: list[asyncio.Server]
    thread: threading.Thread

    @property
    def port(self) -> int:
        return self.settings.smtp_port

    @property
    def tls_port(self) -> int:
        assert self.settings.smtps_port is not None
        return self.settings.smtps_port

    @property
    def cert_file(self) -> Path:
        return self.settings.home / "tls" / "listener.crt"

    def stop(self) -> None:
        async def close() -> None:
            for server in self.servers:
                server.close()

        asyncio.run_coroutine_threadsafe(close(), self.loop).result(timeout=10)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(timeout=10)


def start_listener(settings: Settings, db: Database) -> RunningListener:
    loop = asyncio.new_event_loop()
    ready: dict[str, Any] = {}
    started = threading.Event()

    def run() -> None:
        asyncio.set_event_loop(loop)
        try:
            ready["servers"] = loop.run_until_complete(start_listeners(settings, db))
        except BaseException as exc:  # noqa: BLE001 - re-raised in the test thread
            ready["error"] = exc
            started.set()
            return
        started.set()
        loop.run_forever()
        loop.close()

    thread = threading.Thread(target=run, name="smtp-listener", daemon=True)
    thread.start()
    started.wait(timeout=10)
    if "error" in ready:
        raise ready["error"]
    return RunningListener(settings, loop, ready["servers"], thread)


@pytest.fixture
def listener_factory(
    db: Database, db_url: str, tmp_path: Path
) -> Iterator[Callable[..., RunningListener]]:
    """Start a listener with the given settings overrides; stopped after the test."""
    running: list[RunningListener] = []

    def make(**overrides: Any) -> RunningListener:
        values: dict[str, Any] = {
            "home": tmp_path / "home",
            "database_url": db_url,
            "smtp_port": free_port(),
            "smtps_port": free_port(),
            "smtp_hostname": "casemail.test",
        }
        values.update(overrides)
        listener = start_listener(Settings(**values), db)
        running.append(listener)
        return listener

    yield make
    for listener in running:
        listener.stop()


# --- Real mail servers: Dovecot (IMAP, POP3, LMTP) and an aiosmtpd SMTP peer --------------
# Used by the account connection tests and the mailbox sync. Appended here, with its import,
# to keep this change additive; the helpers themselves are in tests/mailservers/.
from tests.mailservers import (  # noqa: E402
    DOVECOT,
    Dovecot,
    MailUser,
    PeerMode,
    SmtpPeer,
    TestPKI,
    TokenIssuer,
)


@pytest.fixture(scope="session")
def mail_pki(tmp_path_factory: pytest.TempPathFactory) -> TestPKI:
    """A throwaway CA and a certificate for localhost/127.0.0.1 (``ca_file`` trusts it)."""
    return TestPKI(tmp_path_factory.mktemp("mail-pki"))


@pytest.fixture(scope="session")
def oauth_tokens() -> Iterator[TokenIssuer]:
    """OAuth2 access tokens that Dovecot (by introspection) and the SMTP peer accept."""
    issuer = TokenIssuer()
    issuer.start()
    yield issuer
    issuer.stop()


def _run_dovecot(pki: TestPKI, tokens: TokenIssuer, *, tls: bool) -> Iterator[Dovecot]:
    if not Path(DOVECOT).exists():
        pytest.skip(f"Dovecot tests skipped: {DOVECOT} not found (run scripts/install --test)")
    server = Dovecot(pki, tokens, tls=tls)
    try:
        server.start()
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
def dovecot(mail_pki: TestPKI, oauth_tokens: TokenIssuer) -> Iterator[Dovecot]:
    """One Dovecot for the session; tests stay independent by each using a fresh user."""
    yield from _run_dovecot(mail_pki, oauth_tokens, tls=True)


@pytest.fixture(scope="session")
def dovecot_without_tls(mail_pki: TestPKI, oauth_tokens: TokenIssuer) -> Iterator[Dovecot]:
    """A Dovecot that offers no TLS at all: no STARTTLS, no STLS, no IMAPS/POP3S ports."""
    yield from _run_dovecot(mail_pki, oauth_tokens, tls=False)


@pytest.fixture
def mail_user(dovecot: Dovecot) -> MailUser:
    """A fresh user with an empty mailbox on the session's Dovecot."""
    return dovecot.add_user()


@pytest.fixture
def smtp_peer_factory(
    mail_pki: TestPKI, oauth_tokens: TokenIssuer
) -> Iterator[Callable[..., SmtpPeer]]:
    """Start SMTP peers: ``make(mode="starttls"|"tls"|"plain", cert=None)``; stopped after
    the test."""
    running: list[SmtpPeer] = []

    def make(mode: PeerMode = "starttls", cert: tuple[Path, Path] | None = None) -> SmtpPeer:
        peer = SmtpPeer(mail_pki, oauth_tokens, mode=mode, cert=cert)
        peer.start()
        running.append(peer)
        return peer

    yield make
    for peer in running:
        peer.stop()
