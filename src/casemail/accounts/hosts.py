"""Refuse server host names that point into private address space.

An account's host is typed by an admin (or found by autodetection) and then connected to by
the service. In production, a host that resolves to a loopback, private, link-local or
otherwise internal address is refused so that account settings cannot be used to probe the
network the service runs in (server-side request forgery). Tests and the local demo turn
this off with ``CASEMAIL_ALLOW_PRIVATE_HOSTS``.
"""

from __future__ import annotations

import ipaddress
import socket

import dns.exception
import dns.resolver


class HostNotAllowed(ValueError):
    """The host resolves to an address casemail may not connect to."""


class HostNotFound(ValueError):
    """The host name does not resolve."""


def _is_internal(address: str) -> bool:
    ip = ipaddress.ip_address(address.split("%", 1)[0])
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return not ip.is_global or ip.is_multicast


# CASEMAIL_DNS_NAMESERVERS, set once per process by ``use_nameservers`` (bootstrap): where
# host names are looked up. Empty: the system's resolver (getaddrinfo).
_nameservers: list[str] = []


def use_nameservers(servers: list[str]) -> None:
    """Look host names up at these servers ("IP" or "IP:port") instead of the system's."""
    _nameservers[:] = servers


def resolve_addresses(host: str, port: int) -> list[str]:
    try:
        return [str(ipaddress.ip_address(host.strip("[]")))]  # a literal: no lookup at all
    except ValueError:
        pass
    if _nameservers:
        return _resolve_with(_nameservers, host)
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError) as exc:
        raise HostNotFound(f"the host name {host!r} does not resolve") from exc
    return sorted({str(info[4][0]) for info in infos})


def _resolve_with(servers: list[str], host: str) -> list[str]:
    resolver = dns.resolver.Resolver(configure=False)
    resolver.nameservers = [s.rpartition(":")[0] if s.count(":") == 1 else s for s in servers]
    ports = {int(s.rpartition(":")[2]) for s in servers if s.count(":") == 1}
    resolver.port = ports.pop() if ports else 53
    resolver.lifetime = 5.0
    found: set[str] = set()
    for kind in ("A", "AAAA"):
        try:
            found.update(str(record) for record in resolver.resolve(host, kind))
        except (dns.exception.DNSException, UnicodeError):
            continue
    if not found:
        raise HostNotFound(f"the host name {host!r} does not resolve")
    return sorted(found)


def check_host(host: str, port: int, *, allow_private: bool) -> None:
    """Raise HostNotFound or HostNotAllowed; return quietly for an acceptable host."""
    addresses = resolve_addresses(host, port)
    if allow_private:
        return
    internal = [a for a in addresses if _is_internal(a)]
    if internal:
        raise HostNotAllowed(
            f"{host!r} resolves to {', '.join(internal)}, a private, loopback or link-local "
            "address; set CASEMAIL_ALLOW_PRIVATE_HOSTS=true to allow internal mail servers"
        )
