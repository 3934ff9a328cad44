"""DNS lookups for autodetection: SRV records (RFC 6186, RFC 8314) and MX records.

SRV service labels, in our order of preference at equal priority: implicit TLS before
STARTTLS (RFC 8314, which adds ``_submissions``), IMAP before POP3. RFC 6186 section 3.4 lets
the priority field order IMAP against POP3, so priority is compared across services.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

import dns.exception
import dns.name
import dns.resolver
from dns.asyncresolver import Resolver
from dns.rdtypes.ANY.MX import MX
from dns.rdtypes.IN.SRV import SRV

from casemail.accounts.detection import Protocol, Step, TrailEntry
from casemail.accounts.endpoint import Security
from casemail.accounts.netcheck import describe_dns_error


@dataclass(frozen=True)
class SrvService:
    label: str
    protocol: Protocol
    security: Security


INCOMING_SERVICES = (
    SrvService("_imaps._tcp", "imap", "tls"),  # RFC 6186 section 3.2
    SrvService("_imap._tcp", "imap", "starttls"),
    SrvService("_pop3s._tcp", "pop3", "tls"),  # RFC 6186 section 3.3
    SrvService("_pop3._tcp", "pop3", "starttls"),
)
OUTGOING_SERVICES = (
    SrvService("_submissions._tcp", "smtp", "tls"),  # RFC 8314
    SrvService("_submission._tcp", "smtp", "starttls"),  # RFC 6186 section 3.1
)


@dataclass(frozen=True)
class SrvTarget:
    service: SrvService
    host: str
    port: int
    priority: int


def _srv_rdata(answer: dns.resolver.Answer) -> list[SRV]:
    if answer.rrset is None:
        return []
    # RFC 2782: lowest priority first; within a priority, a weighted random order.
    return [rdata for rdata in answer.rrset.processing_order() if isinstance(rdata, SRV)]


async def _lookup(
    domain: str, service: SrvService, resolver: Resolver
) -> tuple[list[SrvTarget], TrailEntry]:
    name = f"{service.label}.{domain}."
    step: Step = "srv"
    try:
        answer = await resolver.resolve(name, "SRV", search=False)
    except (dns.resolver.NXDOMAIN, dns.resolver.NoAnswer):
        return [], TrailEntry(step, name, "not-found", "no SRV record")
    except dns.exception.DNSException as exc:
        return [], TrailEntry(step, name, "failed", describe_dns_error(exc))
    records = _srv_rdata(answer)
    # RFC 2782 and RFC 6186 section 3.4: a lone target of "." means "decidedly not offered".
    offered = [r for r in records if r.target != dns.name.root]
    if not offered:
        return [], TrailEntry(step, name, "not-offered", 'target "." (service not offered)')
    targets = [
        SrvTarget(service, r.target.to_text(omit_final_dot=True), r.port, r.priority)
        for r in offered
    ]
    listed = ", ".join(f"{t.host}:{t.port} priority {t.priority}" for t in targets)
    return targets, TrailEntry(step, name, "found", listed)


async def srv_targets(
    domain: str, services: tuple[SrvService, ...], *, resolver: Resolver
) -> tuple[list[SrvTarget], list[TrailEntry]]:
    """Every offered target of ``services`` at ``domain``, best first, and the trail."""
    results = await asyncio.gather(*(_lookup(domain, s, resolver) for s in services))
    targets = [target for found, _ in results for target in found]
    # Stable sort: equal priorities keep the service order above and RFC 2782's order.
    targets.sort(key=lambda target: target.priority)
    return targets, [entry for _, entry in results]


async def mx_hosts(domain: str, *, resolver: Resolver) -> tuple[list[str], TrailEntry]:
    """The domain's MX host names, most preferred first (RFC 5321 section 5.1)."""
    name = f"{domain}."
    try:
        answer = await resolver.resolve(name, "MX", search=False)
    except (dns.resolver.NXDOMAIN, dns.resolver.NoAnswer):
        return [], TrailEntry("mx", name, "not-found", "no MX record")
    except dns.exception.DNSException as exc:
        return [], TrailEntry("mx", name, "failed", describe_dns_error(exc))
    records = sorted(
        (r for r in (answer.rrset or ()) if isinstance(r, MX)), key=lambda r: r.preference
    )
    # RFC 7505: a "null MX" (exchange ".") says the domain accepts no mail at all.
    hosts = [
        r.exchange.to_text(omit_final_dot=True) for r in records if r.exchange != dns.name.root
    ]
    if not hosts:
        return [], TrailEntry("mx", name, "not-offered", 'null MX (exchange ".")')
    return hosts, TrailEntry("mx", name, "found", ", ".join(hosts))
