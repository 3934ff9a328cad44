"""The domain's own autoconfig file, in Thunderbird's ``config-v1.1.xml`` format.

Looked for at ``https://autoconfig.<domain>/mail/config-v1.1.xml?emailaddress=<address>``
and ``https://<domain>/.well-known/autoconfig/mail/config-v1.1.xml``. The file comes from
the network, so it is parsed with defusedxml (no DTD, no entities, no external references),
its size is capped, redirects are not followed, and the HTTP connection goes to the
address that passed the private-address check (the host name is kept for Host and SNI).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal
from urllib.parse import urlencode
from xml.etree.ElementTree import Element, ParseError

import defusedxml
import defusedxml.ElementTree
import dns.exception
import httpx
from dns.asyncresolver import Resolver

from casemail.accounts.detection import Protocol, ServerSettings, TrailEntry
from casemail.accounts.endpoint import AuthType, Security
from casemail.accounts.hosts import HostNotAllowed, HostNotFound
from casemail.accounts.netcheck import describe_dns_error, resolve_checked

# "plain" (no TLS at all) is left out on purpose: RFC 8314 makes cleartext obsolete.
SOCKET_TYPES: dict[str, Security] = {"ssl": "tls", "tls": "tls", "starttls": "starttls"}
INCOMING_TYPES: dict[str, Protocol] = {"imap": "imap", "pop3": "pop3"}
AUTH_TYPES: dict[str, AuthType] = {
    "oauth2": "oauth2",
    "password-cleartext": "password",
    "password-encrypted": "password",
    "plain": "password",
    "secure": "password",
}
_HOSTNAME = re.compile(r"^(?=.{1,253}$)[A-Za-z0-9_]([A-Za-z0-9_.-]*[A-Za-z0-9])?$")


class AutoconfigError(ValueError):
    """The autoconfig file is too large, not XML, or not usable."""


class AutoconfigMissing(AutoconfigError):
    """The server answered, but not with a file (404, a redirect, another status)."""


@dataclass(frozen=True)
class AutoconfigSettings:
    """Where to look: tests point ``scheme`` and ``port`` at a local HTTP server."""

    scheme: Literal["https", "http"] = "https"
    port: int | None = None
    timeout: float = 10.0
    max_bytes: int = 256 * 1024


@dataclass(frozen=True)
class ClientConfig:
    """Usable servers in the file's order (its order of preference); ``skipped`` counts
    servers left out for having no TLS or an invalid host or port."""

    incoming: tuple[ServerSettings, ...]
    outgoing: tuple[ServerSettings, ...]
    auth_types: tuple[AuthType, ...]
    skipped: int = 0


def _substitute(template: str, email: str) -> str:
    local, _, domain = email.rpartition("@")
    return (
        template.replace("%EMAILADDRESS%", email)
        .replace("%EMAILLOCALPART%", local)
        .replace("%EMAILDOMAIN%", domain)
    )


def _server(element: Element, protocol: Protocol, email: str) -> ServerSettings | None:
    host = _substitute(element.findtext("hostname", "").strip(), email)
    socket_type = element.findtext("socketType", "").strip().lower()
    port = element.findtext("port", "").strip()
    security = SOCKET_TYPES.get(socket_type)
    if security is None or not _HOSTNAME.match(host):
        return None
    if not port.isdigit() or not 0 < int(port) < 65536:
        return None
    username = _substitute(element.findtext("username", "%EMAILADDRESS%").strip(), email)
    return ServerSettings(protocol, host, int(port), security, username or email)


def _auth_types(provider: Element) -> tuple[AuthType, ...]:
    found: list[AuthType] = []
    for auth in provider.iter("authentication"):
        kind = AUTH_TYPES.get((auth.text or "").strip().lower())
        if kind and kind not in found:
            found.append(kind)
    return tuple(found) or ("password",)


def parse_client_config(data: bytes, email: str) -> ClientConfig:
    """Parse a ``config-v1.1.xml`` file; raise AutoconfigError when it is not usable."""
    try:
        root = defusedxml.ElementTree.fromstring(data, forbid_dtd=True)
    except (ParseError, defusedxml.DefusedXmlException) as exc:
        raise AutoconfigError(f"not well-formed or unsafe XML: {exc}") from exc
    provider = root.find("emailProvider") if root.tag == "clientConfig" else None
    if provider is None:
        raise AutoconfigError("no <clientConfig><emailProvider> element")
    incoming = [
        _server(e, INCOMING_TYPES[e.get("type", "")], email)
        for e in provider.iter("incomingServer")
        if e.get("type", "") in INCOMING_TYPES  # exchange, ews, graph... are not ours
    ]
    outgoing = [_server(e, "smtp", email) for e in provider.iter("outgoingServer")]
    config = ClientConfig(
        incoming=tuple(s for s in incoming if s),
        outgoing=tuple(s for s in outgoing if s),
        auth_types=_auth_types(provider),
        skipped=sum(s is None for s in incoming + outgoing),
    )
    if not config.incoming and not config.outgoing:
        raise AutoconfigError("no IMAP, POP3 or SMTP server with TLS in the file")
    return config


def locations(email: str, domain: str) -> list[tuple[str, str]]:
    """(host, path) pairs to try, in order."""
    query = urlencode({"emailaddress": email})
    return [
        (f"autoconfig.{domain}", f"/mail/config-v1.1.xml?{query}"),
        (domain, "/.well-known/autoconfig/mail/config-v1.1.xml"),
    ]


def _netloc(host: str, settings: AutoconfigSettings) -> str:
    return f"{host}:{settings.port}" if settings.port else host


async def _fetch(
    http: httpx.AsyncClient, address: str, host: str, path: str, settings: AutoconfigSettings
) -> bytes:
    port = settings.port or (443 if settings.scheme == "https" else 80)
    literal = f"[{address}]" if ":" in address else address
    url = f"{settings.scheme}://{literal}:{port}{path}"
    headers = {"Host": _netloc(host, settings), "Accept": "application/xml, text/xml"}
    request = http.build_request(
        "GET", url, headers=headers, timeout=settings.timeout, extensions={"sni_hostname": host}
    )
    response = await http.send(request, stream=True, follow_redirects=False)
    try:
        if response.is_redirect:
            raise AutoconfigMissing(f"HTTP {response.status_code} (redirects are not followed)")
        if response.status_code != 200:
            raise AutoconfigMissing(f"HTTP {response.status_code}")
        body = bytearray()
        async for chunk in response.aiter_bytes():
            body += chunk
            if len(body) > settings.max_bytes:
                raise AutoconfigError(f"larger than {settings.max_bytes} bytes")
        return bytes(body)
    finally:
        await response.aclose()


async def _try(
    email: str,
    host: str,
    path: str,
    *,
    http: httpx.AsyncClient,
    resolver: Resolver,
    allow_private: bool,
    settings: AutoconfigSettings,
) -> tuple[ClientConfig | None, TrailEntry]:
    url = f"{settings.scheme}://{_netloc(host, settings)}{path}"
    port = settings.port or (443 if settings.scheme == "https" else 80)
    try:
        addresses = await resolve_checked(
            host, port, resolver=resolver, allow_private=allow_private
        )
        config = parse_client_config(await _fetch(http, addresses[0], host, path, settings), email)
    except HostNotAllowed as exc:
        return None, TrailEntry("autoconfig", url, "refused", str(exc))
    except HostNotFound as exc:
        return None, TrailEntry("autoconfig", url, "not-found", str(exc))
    except dns.exception.DNSException as exc:
        return None, TrailEntry("autoconfig", url, "failed", describe_dns_error(exc))
    except httpx.HTTPError as exc:
        return None, TrailEntry("autoconfig", url, "failed", str(exc) or type(exc).__name__)
    except AutoconfigMissing as exc:
        return None, TrailEntry("autoconfig", url, "not-found", str(exc))
    except AutoconfigError as exc:
        return None, TrailEntry("autoconfig", url, "invalid", str(exc))
    found = f"{len(config.incoming) + len(config.outgoing)} usable server(s)"
    if config.skipped:
        found += f", {config.skipped} skipped (no TLS, or invalid host or port)"
    return config, TrailEntry("autoconfig", url, "found", found)


async def fetch_client_config(
    email: str,
    domain: str,
    *,
    http: httpx.AsyncClient,
    resolver: Resolver,
    allow_private: bool,
    settings: AutoconfigSettings,
) -> tuple[ClientConfig | None, list[TrailEntry]]:
    """The first usable autoconfig file of the domain, and the trail of every try."""
    entries: list[TrailEntry] = []
    for host, path in locations(email, domain):
        config, entry = await _try(
            email,
            host,
            path,
            http=http,
            resolver=resolver,
            allow_private=allow_private,
            settings=settings,
        )
        entries.append(entry)
        if config is not None:
            return config, entries
    return None, entries
