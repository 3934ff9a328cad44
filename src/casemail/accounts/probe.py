"""Check servers found by autodetection, and guess servers from common host names.

A ``Checker`` vets a host (resolve with the caller's resolver, every address through
``hosts.check_host``) and greets it on the vetted address. ``guess`` is autodetection's last
step: imap., mail., pop., smtp. on the well-known ports (RFC 8314 section 7.3 for implicit
TLS, RFC 6409 for submission), all greeted at once with a short timeout.
"""

from __future__ import annotations

import asyncio
import ssl
from dataclasses import dataclass

import dns.exception
from dns.asyncresolver import Resolver

from casemail.accounts.detection import Protocol, ServerSettings, Step, Trail, TrailEntry
from casemail.accounts.endpoint import Security
from casemail.accounts.hosts import HostNotAllowed, HostNotFound
from casemail.accounts.netcheck import (
    ProbeFailed,
    ProbeTarget,
    describe_dns_error,
    greet,
    resolve_checked,
)

Ports = tuple[tuple[int, Security], ...]


@dataclass(frozen=True)
class ProbeSettings:
    """How servers are greeted and what the probe step guesses; tests inject the ports.
    ``tls_context`` verifies implicit-TLS servers (default: the system's trust store)."""

    imap_ports: Ports = ((993, "tls"), (143, "starttls"))
    pop3_ports: Ports = ((995, "tls"), (110, "starttls"))
    smtp_ports: Ports = ((465, "tls"), (587, "starttls"))
    imap_hosts: tuple[str, ...] = ("imap", "mail")
    pop3_hosts: tuple[str, ...] = ("pop", "pop3", "mail")
    smtp_hosts: tuple[str, ...] = ("smtp", "mail")
    timeout: float = 3.0
    tls_context: ssl.SSLContext | None = None


@dataclass(frozen=True)
class Checker:
    resolver: Resolver
    allow_private: bool
    settings: ProbeSettings

    async def vet(self, step: Step, host: str) -> tuple[list[str], TrailEntry | None]:
        """The host's addresses if all are allowed, else a trail entry saying why not."""
        try:
            addresses = await resolve_checked(
                host, 0, resolver=self.resolver, allow_private=self.allow_private
            )
        except HostNotAllowed as exc:
            return [], TrailEntry(step, host, "refused", str(exc))
        except HostNotFound as exc:
            return [], TrailEntry(step, host, "not-found", str(exc))
        except dns.exception.DNSException as exc:
            return [], TrailEntry(step, host, "failed", describe_dns_error(exc))
        return addresses, None

    async def greet(self, step: Step, server: ServerSettings, addresses: list[str]) -> TrailEntry:
        target = ProbeTarget(server.protocol, server.host, server.port, server.security)
        where = f"{server.protocol} {server.host}:{server.port} ({server.security})"
        try:
            line = await greet(
                target,
                addresses,
                timeout=self.settings.timeout,
                tls_context=self.settings.tls_context,
            )
        except ProbeFailed as exc:
            return TrailEntry(step, where, "failed", str(exc))
        return TrailEntry(step, where, "found", line[:120])

    async def first_reachable(
        self, step: Step, servers: list[ServerSettings], trail: Trail
    ) -> ServerSettings | None:
        """Vet and greet the servers one at a time, in order; the first that greets wins."""
        for server in servers:
            addresses, problem = await self.vet(step, server.host)
            entry = problem or await self.greet(step, server, addresses)
            trail.extend([entry])
            if entry.outcome == "found":
                return server
        return None

    def guesses(self, domain: str, email: str) -> list[ServerSettings]:
        """Candidates in order of preference: IMAP, then POP3, then SMTP; TLS ports first."""
        s = self.settings
        plans: tuple[tuple[Protocol, tuple[str, ...], Ports], ...] = (
            ("imap", s.imap_hosts, s.imap_ports),
            ("pop3", s.pop3_hosts, s.pop3_ports),
            ("smtp", s.smtp_hosts, s.smtp_ports),
        )
        return [
            ServerSettings(protocol, f"{prefix}.{domain}", port, security, email)
            for protocol, prefixes, ports in plans
            for prefix in prefixes
            for port, security in ports
        ]

    async def guess(
        self, domain: str, email: str, trail: Trail
    ) -> tuple[ServerSettings | None, ServerSettings | None]:
        """The best greeting incoming and outgoing guesses; every host is vetted once."""
        guesses = self.guesses(domain, email)
        hosts = list(dict.fromkeys(server.host for server in guesses))
        vetted = await asyncio.gather(*(self.vet("probe", host) for host in hosts))
        trail.extend([problem for _, problem in vetted if problem])
        found = {host: addrs for host, (addrs, problem) in zip(hosts, vetted, strict=True) if addrs}
        candidates = [server for server in guesses if server.host in found]
        entries = await asyncio.gather(
            *(self.greet("probe", server, found[server.host]) for server in candidates)
        )
        trail.extend(list(entries))
        greeted = [c for c, e in zip(candidates, entries, strict=True) if e.outcome == "found"]
        incoming = next((c for c in greeted if c.protocol != "smtp"), None)
        outgoing = next((c for c in greeted if c.protocol == "smtp"), None)
        return incoming, outgoing
