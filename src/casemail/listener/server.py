"""Sockets for the listener: plain with STARTTLS, and optionally implicit TLS (RFC 8314)."""

from __future__ import annotations

import asyncio
import logging
import ssl
from collections.abc import Sequence
from typing import Any

from aiosmtpd.smtp import SMTP

from casemail.config import Settings
from casemail.db.engine import Database
from casemail.ingest import IngestOptions
from casemail.listener import replies
from casemail.listener.allowlist import is_allowed, peer_ip
from casemail.listener.handler import IntakeHandler
from casemail.listener.tls import server_context

log = logging.getLogger("casemail.listener")


class GuardedSMTP(SMTP):
    """aiosmtpd's SMTP with the listener allow-list checked when a client connects.

    A refused client gets a 554 greeting and the connection is closed (RFC 5321 section
    3.1 lets a server answer the connection with 554 instead of 220).
    """

    def __init__(
        self, handler: IntakeHandler, *, allowed_networks: Sequence[str], **kwargs: Any
    ) -> None:
        super().__init__(handler, **kwargs)
        self._allowed_networks = list(allowed_networks)
        self._refused = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        ip = peer_ip(transport.get_extra_info("peername"))
        if not is_allowed(ip, self._allowed_networks):
            log.warning("refused connection from %s: not in the listener allow-list", ip)
            self._refused = True
            assert isinstance(transport, asyncio.WriteTransport)
            transport.write(replies.CLIENT_REFUSED.encode() + b"\r\n")
            transport.close()
            return
        super().connection_made(transport)

    def connection_lost(self, error: Exception | None) -> None:
        if not self._refused:
            super().connection_lost(error)

    def eof_received(self) -> bool | None:
        return None if self._refused else super().eof_received()


def _protocol_factory(
    settings: Settings, db: Database, tls: ssl.SSLContext | None, *, starttls: bool
) -> Any:
    handler = IntakeHandler(
        db,
        require_tls=settings.smtp_require_tls,
        inline=settings.smtp_processing == "inline",
        options=IngestOptions(
            max_attempts=settings.ingest_max_attempts, claim_seconds=settings.ingest_claim_seconds
        ),
    )

    def build() -> GuardedSMTP:
        return GuardedSMTP(
            handler,
            allowed_networks=settings.smtp_allowed_networks,
            hostname=settings.smtp_hostname,
            data_size_limit=settings.max_message_size,
            enable_SMTPUTF8=True,
            decode_data=False,
            tls_context=tls if starttls else None,
            ident="casemail ESMTP",
        )

    return build


async def start_listeners(settings: Settings, db: Database) -> list[asyncio.Server]:
    """Bind the SMTP port (and the implicit-TLS port when configured); return the servers."""
    loop = asyncio.get_running_loop()
    needs_tls = settings.smtp_starttls or settings.smtp_require_tls or settings.smtps_port
    tls = server_context(settings) if needs_tls else None
    starttls = tls is not None and (settings.smtp_starttls or settings.smtp_require_tls)
    servers = [
        await loop.create_server(
            _protocol_factory(settings, db, tls, starttls=starttls),
            host=settings.smtp_host,
            port=settings.smtp_port,
        )
    ]
    if settings.smtps_port is not None:
        assert tls is not None
        servers.append(
            await loop.create_server(
                _protocol_factory(settings, db, None, starttls=False),
                host=settings.smtp_host,
                port=settings.smtps_port,
                ssl=tls,
            )
        )
    for server in servers:
        log.info("SMTP listening on %s", [s.getsockname() for s in server.sockets])
    return servers
