"""Find the mail servers of an address: the "autodetect" button of the account form.

Steps, in order; the first that finds a server wins:

1. ``preset``: a provider preset for the address's domain (no network at all);
2. ``srv``: DNS SRV records (RFC 6186, RFC 8314 ``_submissions``), best priority first;
3. ``mx``: the domain's MX hosts matched to a preset (``*.mail.protection.outlook.com`` is
   Microsoft 365);
4. ``autoconfig``: the domain's Thunderbird-format autoconfig file;
5. ``probe``: common host names (imap., mail., pop., smtp.) on the well-known ports.

Every host found by steps 2, 4 and 5 is resolved with the caller's resolver, each address
passes ``hosts.check_host(allow_private=...)``, and only then is the server greeted on that
address (IMAP "* OK", POP3 "+OK", SMTP "220"). A server that does not greet is not offered.
The caller gets a ``Detection`` with a trail of everything tried.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

import httpx
from dns.asyncresolver import Resolver
from email_validator import EmailNotValidError, validate_email

from casemail.accounts.autoconfig import AutoconfigSettings, fetch_client_config
from casemail.accounts.detection import (
    Detection,
    Found,
    ServerSettings,
    Trail,
    TrailEntry,
    detection_from,
    found_from_preset,
)
from casemail.accounts.dnsdiscovery import (
    INCOMING_SERVICES,
    OUTGOING_SERVICES,
    SrvTarget,
    mx_hosts,
    srv_targets,
)
from casemail.accounts.presets import preset_for_domain, preset_for_mx
from casemail.accounts.probe import Checker, ProbeSettings
from casemail.accounts.tlsclient import client_tls_context

if TYPE_CHECKING:
    from casemail.bootstrap import AppContext

__all__ = [
    "AutoconfigSettings",
    "Detection",
    "InvalidEmailAddress",
    "ProbeSettings",
    "ServerSettings",
    "TrailEntry",
    "detect",
    "detect_for_api",
]

log = logging.getLogger("casemail.accounts.autodetect")

_GUESS_NOTE = "The user name is a guess (the full address); some servers want the part before @."


class InvalidEmailAddress(ValueError):
    """The address given to ``detect`` is not a valid email address."""


@dataclass(frozen=True)
class _Run:
    email: str
    domain: str
    resolver: Resolver
    http: httpx.AsyncClient
    allow_private: bool
    autoconfig: AutoconfigSettings
    checker: Checker
    trail: Trail


async def _by_preset(run: _Run) -> Found | None:
    preset = preset_for_domain(run.domain)
    if preset is None:
        run.trail.add("preset", run.domain, "not-found", "no preset for this domain")
        return None
    run.trail.add("preset", run.domain, "found", preset.name)
    return found_from_preset(preset, run.email, source="preset", confidence="high")


def _from_srv(targets: list[SrvTarget], email: str) -> list[ServerSettings]:
    return [
        ServerSettings(t.service.protocol, t.host, t.port, t.service.security, email)
        for t in targets
    ]


async def _by_srv(run: _Run) -> Found | None:
    (incoming, trail_in), (outgoing, trail_out) = await asyncio.gather(
        srv_targets(run.domain, INCOMING_SERVICES, resolver=run.resolver),
        srv_targets(run.domain, OUTGOING_SERVICES, resolver=run.resolver),
    )
    run.trail.extend(trail_in + trail_out)
    imap_or_pop3 = await run.checker.first_reachable(
        "srv", _from_srv(incoming, run.email), run.trail
    )
    smtp = await run.checker.first_reachable("srv", _from_srv(outgoing, run.email), run.trail)
    if imap_or_pop3 is None and smtp is None:
        return None
    return Found("srv", "high", imap_or_pop3, smtp, notes=(_GUESS_NOTE,))


async def _by_mx(run: _Run) -> Found | None:
    hosts, entry = await mx_hosts(run.domain, resolver=run.resolver)
    run.trail.extend([entry])
    for host in hosts:
        preset = preset_for_mx(host)
        if preset is not None:
            run.trail.add("mx", host, "found", f"served by {preset.name}")
            found = found_from_preset(preset, run.email, source="mx", confidence="medium")
            why = f"Chosen because the domain's mail goes to {host} ({preset.name})."
            return replace(found, notes=(why, *found.notes))
    if hosts:
        run.trail.add("mx", ", ".join(hosts), "not-found", "no preset matches these MX hosts")
    return None


async def _by_autoconfig(run: _Run) -> Found | None:
    config, entries = await fetch_client_config(
        run.email,
        run.domain,
        http=run.http,
        resolver=run.resolver,
        allow_private=run.allow_private,
        settings=run.autoconfig,
    )
    run.trail.extend(entries)
    if config is None:
        return None
    incoming = await run.checker.first_reachable("autoconfig", list(config.incoming), run.trail)
    outgoing = await run.checker.first_reachable("autoconfig", list(config.outgoing), run.trail)
    if incoming is None and outgoing is None:
        return None
    return Found("autoconfig", "high", incoming, outgoing, config.auth_types)


async def _by_probe(run: _Run) -> Found | None:
    incoming, outgoing = await run.checker.guess(run.domain, run.email, run.trail)
    if incoming is None and outgoing is None:
        return None
    notes = ("Guessed from common host names: run the connection test before saving.", _GUESS_NOTE)
    return Found("probe", "low", incoming, outgoing, notes=notes)


_STEPS: tuple[Callable[[_Run], Awaitable[Found | None]], ...] = (
    _by_preset,
    _by_srv,
    _by_mx,
    _by_autoconfig,
    _by_probe,
)


def _parse_address(email: str) -> tuple[str, str]:
    try:
        valid = validate_email(email, check_deliverability=False)
    except EmailNotValidError as exc:
        raise InvalidEmailAddress(str(exc)) from exc
    return valid.normalized, valid.ascii_domain.lower()


async def detect(
    email: str,
    *,
    resolver: Resolver,
    http: httpx.AsyncClient,
    allow_private: bool = False,
    probe: ProbeSettings | None = None,
    autoconfig: AutoconfigSettings | None = None,
    guess_hosts: bool = True,
) -> Detection:
    """Detect the servers for ``email``; raise InvalidEmailAddress for a bad address.
    ``guess_hosts=False`` leaves out the last step (probing common host names)."""
    address, domain = _parse_address(email)
    checker = Checker(resolver, allow_private, probe or ProbeSettings())
    settings = autoconfig or AutoconfigSettings()
    run = _Run(address, domain, resolver, http, allow_private, settings, checker, Trail())
    for step in _STEPS if guess_hosts else _STEPS[:-1]:
        found = await step(run)
        if found is not None:
            log.info("autodetect %s: found by %s", domain, found.source)
            return detection_from(address, found, run.trail)
    log.info("autodetect %s: nothing found", domain)
    notes = ("Nothing was found: enter the server settings by hand.",)
    return Detection(address, "none", "none", notes=notes, trail=tuple(run.trail.entries))


async def detect_for_api(ctx: AppContext, email: str, *, probe: bool = True) -> dict[str, Any]:
    """``detect`` with the service's settings, as a JSON-ready dict: the system's DNS
    resolver, CASEMAIL_ALLOW_PRIVATE_HOSTS, and the extra CA file for implicit-TLS greetings.
    ``probe=False`` skips guessing common host names."""
    settings = ctx.settings
    tls = client_tls_context(verify=True, ca_file=settings.tls_ca_file)
    async with httpx.AsyncClient(timeout=10.0, follow_redirects=False) as http:
        detection = await detect(
            email,
            resolver=resolver_for(settings.dns_nameservers),
            http=http,
            allow_private=settings.private_hosts_allowed,
            probe=ProbeSettings(tls_context=tls),
            guess_hosts=probe,
        )
    return detection.as_dict()


def resolver_for(nameservers: list[str]) -> Resolver:
    """The system's resolver, or one asking the configured servers ("IP" or "IP:port")."""
    if not nameservers:
        return Resolver()
    resolver = Resolver(configure=False)
    hosts, ports = [], set()
    for server in nameservers:
        host, sep, port = server.rpartition(":") if server.count(":") == 1 else ("", "", "")
        hosts.append(host if sep else server)
        ports.add(int(port) if sep else 53)
    if len(ports) > 1:
        raise ValueError("CASEMAIL_DNS_NAMESERVERS: all servers must use the same port")
    resolver.nameservers = hosts
    resolver.port = ports.pop()
    return resolver
