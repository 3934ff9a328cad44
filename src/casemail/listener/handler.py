"""aiosmtpd handler: recipients are channel addresses; DATA is committed, then answered.

The reply to DATA is sent only after ``ingest_raw`` has committed the raw message, so a
250 means the message is on disk (RFC 5321 section 6.1: the server takes responsibility).
"""

from __future__ import annotations

import asyncio
import logging
import re
from dataclasses import dataclass
from typing import Any

from casemail.channels.service import find_channel
from casemail.db.engine import Database
from casemail.ingest import IngestOptions, Source, ingest_raw
from casemail.ingest.pipeline import store_for_workers
from casemail.listener import replies
from casemail.listener.allowlist import is_allowed, peer_ip

log = logging.getLogger("casemail.listener")

# A CR not followed by LF, or an LF not preceded by CR: the raw material of SMTP smuggling
# (CVE-2023-51764 and relatives). aiosmtpd only ends DATA on CRLF.CRLF, but a downstream
# parser may not, so such data is refused whole.
_BARE_CR_OR_LF = re.compile(rb"\r(?!\n)|(?<!\r)\n")
# RFC 5321 section 4.5.3.1.8: at least 100 recipients must be accepted.
MAX_RECIPIENTS = 100


@dataclass(frozen=True)
class _Target:
    channel_id: int
    address: str


def _lookup(db: Database, address: str) -> tuple[int, bool, list[str]] | None:
    with db.read() as session:
        channel = find_channel(session, address)
        if channel is None:
            return None
        return channel.id, channel.active, list(channel.allowed_networks or [])


def _encrypted(server: Any) -> bool:
    """True after STARTTLS and on the implicit-TLS port alike."""
    transport = server.transport
    return transport is not None and transport.get_extra_info("ssl_object") is not None


class IntakeHandler:
    def __init__(
        self,
        db: Database,
        *,
        require_tls: bool,
        options: IngestOptions | None = None,
        inline: bool = True,
    ) -> None:
        self.db = db
        self.require_tls = require_tls
        self.options = options or IngestOptions()
        self.inline = inline  # False: store only; the workers make the case (smtp_processing)

    async def handle_MAIL(
        self, server: Any, session: Any, envelope: Any, address: str, mail_options: list[str]
    ) -> str:
        # RFC 3207 section 4: a server may refuse mail until the client has used STARTTLS.
        if self.require_tls and not _encrypted(server):
            return replies.TLS_REQUIRED
        envelope.mail_from = address
        envelope.mail_options.extend(mail_options)
        envelope.casemail_targets = []
        return replies.SENDER_OK

    async def handle_RCPT(
        self, server: Any, session: Any, envelope: Any, address: str, rcpt_options: list[str]
    ) -> str:
        targets: list[_Target] = envelope.casemail_targets
        if len(targets) >= MAX_RECIPIENTS:
            return replies.TOO_MANY_RECIPIENTS
        try:
            found = await asyncio.to_thread(_lookup, self.db, address)
        except Exception:
            log.exception("recipient lookup failed for %s", address)
            return replies.TEMPORARY_FAILURE
        if found is None:
            return replies.UNKNOWN_RECIPIENT
        channel_id, active, networks = found
        if not active:
            return replies.CHANNEL_INACTIVE
        ip = peer_ip(session.peer)
        if not is_allowed(ip, networks):
            log.warning("refused %s for channel %s: not in its allow-list", ip, address)
            return replies.CHANNEL_REFUSED
        if all(t.channel_id != channel_id for t in targets):
            targets.append(_Target(channel_id, address))
        envelope.rcpt_tos.append(address)
        envelope.rcpt_options.extend(rcpt_options)
        return replies.RECIPIENT_OK

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        raw: bytes = envelope.original_content or b""
        if _BARE_CR_OR_LF.search(raw):
            log.warning("refused message from %s: bare CR or LF", peer_ip(session.peer))
            return replies.BAD_LINE_ENDINGS
        source = Source(
            kind="smtp",
            envelope_from=envelope.mail_from or None,
            envelope_to=tuple(envelope.rcpt_tos),
            peer=peer_ip(session.peer),
        )
        stored: list[int] = []
        for target in envelope.casemail_targets:
            try:
                if self.inline:
                    result = await asyncio.to_thread(
                        ingest_raw, self.db, target.channel_id, raw, source, options=self.options
                    )
                else:
                    result = await asyncio.to_thread(
                        store_for_workers, self.db, target.channel_id, raw, source
                    )
            except Exception:
                # Nothing acknowledged: the client retries, and dedupe keeps what was stored.
                log.exception("could not store message for %s", target.address)
                return replies.TEMPORARY_FAILURE
            stored.append(result.inbound_id)
        return replies.queued(stored)
