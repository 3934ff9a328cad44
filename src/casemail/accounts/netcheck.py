"""Resolve a host through the given DNS resolver, refuse private addresses, greet a server.

Autodetection resolves every host it found (in SRV, autoconfig or by guessing) with the
caller's dnspython resolver, passes each address through ``hosts.check_host`` and then
connects to that very address, never to the name again: a second lookup could answer
differently (DNS rebinding) and reach a host the check refused.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import ssl
from dataclasses import dataclass

import dns.exception
import dns.name
import dns.resolver
from dns.asyncresolver import Resolver

from casemail.accounts.detection import Protocol
from casemail.accounts.endpoint import Security
from casemail.accounts.hosts import HostNotFound, check_host

# What a server says first when it is willing to talk: RFC 9051 section 7.1 (IMAP "* OK",
# or "* PREAUTH"), RFC 1939 section 4 (POP3 "+OK"), RFC 5321 section 4.2 (SMTP "220").
GREETINGS: dict[Protocol, tuple[bytes, ...]] = {
    "imap": (b"* OK", b"* PREAUTH"),
    "pop3": (b"+OK",),
    "smtp": (b"220 ", b"220-", b"220\r\n"),
}
GOODBYES: dict[Protocol, bytes] = {
    "imap": b"a LOGOUT\r\n",
    "pop3": b"QUIT\r\n",
    "smtp": b"QUIT\r\n",
}
MAX_GREETING = 4096


class ProbeFailed(Exception):
    """No greeting, or not the greeting the protocol expects."""


@dataclass(frozen=True)
class ProbeTarget:
    protocol: Protocol
    host: str
    port: int
    security: Security


def _is_ip(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


async def resolve(host: str, *, resolver: Resolver) -> list[str]:
    """IPv4 then IPv6 addresses of ``host``; raises HostNotFound or a DNSException."""
    if _is_ip(host):
        return [host]
    name = dns.name.from_text(host)
    addresses: list[str] = []
    for rdtype in ("A", "AAAA"):
        try:
            answer = await resolver.resolve(name, rdtype, search=False)
        except dns.resolver.NXDOMAIN as exc:
            raise HostNotFound(f"the host name {host!r} does not exist") from exc
        except dns.resolver.NoAnswer:
            continue
        addresses.extend(rdata.to_text() for rdata in answer)
    if not addresses:
        raise HostNotFound(f"the host name {host!r} has no address")
    return addresses


async def resolve_checked(
    host: str, port: int, *, resolver: Resolver, allow_private: bool
) -> list[str]:
    """The addresses of ``host`` once each has passed ``check_host``; raises HostNotFound,
    HostNotAllowed or a DNSException."""
    addresses = await resolve(host, resolver=resolver)
    for address in addresses:
        # An address literal: getaddrinfo parses it, no second DNS lookup happens.
        check_host(address, port, allow_private=allow_private)
    return addresses


async def _greet_once(target: ProbeTarget, address: str, tls_context: ssl.SSLContext | None) -> str:
    reader, writer = await asyncio.open_connection(
        address,
        target.port,
        ssl=tls_context,
        server_hostname=target.host if tls_context else None,
        limit=MAX_GREETING,
    )
    try:
        line = await reader.readline()
        if not line.startswith(GREETINGS[target.protocol]):
            raise ProbeFailed(f"unexpected greeting {line[:80]!r}")
        writer.write(GOODBYES[target.protocol])
        return line.decode("ascii", "replace").strip()
    finally:
        writer.close()
        with contextlib.suppress(OSError, TimeoutError):
            await asyncio.wait_for(writer.wait_closed(), 1.0)


async def greet(
    target: ProbeTarget,
    addresses: list[str],
    *,
    timeout: float,
    tls_context: ssl.SSLContext | None = None,
) -> str:
    """Connect (TLS first for ``tls``; plain for ``starttls`` and ``none``, where only the
    greeting is read) to the first address that answers; return its greeting line."""
    context = None
    if target.security == "tls":
        context = tls_context or ssl.create_default_context()
    errors: list[str] = []
    for address in addresses:
        try:
            return await asyncio.wait_for(_greet_once(target, address, context), timeout)
        except TimeoutError:
            errors.append(f"{address}: no greeting within {timeout:g}s")
        except (OSError, ValueError, ProbeFailed) as exc:
            errors.append(f"{address}: {exc or type(exc).__name__}")
    raise ProbeFailed("; ".join(errors) or "no address to connect to")


def describe_dns_error(exc: dns.exception.DNSException) -> str:
    return str(exc) or type(exc).__name__
