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


class HostNotAllowed(ValueError):
    """The host resolves to an address casemail may not connect to."""


class HostNotFound(ValueError):
    """The host name does not resolve."""


def _is_internal(address: str) -> bool:
    ip = ipaddress.ip_address(address.split("%", 1)[0])
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return not ip.is_global or ip.is_multicast


def resolve_addresses(host: str, port: int) -> list[str]:
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError) as exc:
        raise HostNotFound(f"the host name {host!r} does not resolve") from exc
    return sorted({str(info[4][0]) for info in infos})


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
