"""Sender IP allow-lists (CIDR ranges), per listener and per channel."""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable
from typing import Any


def peer_ip(peer: Any) -> str | None:
    """The IP address from a socket peername (tuple for IPv4/IPv6)."""
    if isinstance(peer, tuple) and peer:
        return str(peer[0])
    return None


def is_allowed(ip: str | None, networks: Iterable[str]) -> bool:
    """True when ``networks`` is empty (no list set) or contains ``ip``."""
    ranges = [ipaddress.ip_network(n, strict=False) for n in networks]
    if not ranges:
        return True
    if ip is None:
        return False
    address = ipaddress.ip_address(ip)
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped:
        address = address.ipv4_mapped
    return any(address in network for network in ranges)
