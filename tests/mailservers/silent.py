"""Sockets that misbehave on purpose: a port that accepts connections and never answers, a
port where connecting times out, and a port where nothing listens."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from contextlib import contextmanager

from tests.conftest import free_port


@contextmanager
def silent_listener() -> Iterator[int]:
    """A loopback port whose TCP handshakes complete (the kernel queues them) but which
    never sends a byte nor accepts: what a client sees of a hung or misrouted server."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen(16)
        yield int(sock.getsockname()[1])


@contextmanager
def unanswered_port() -> Iterator[int]:
    """A loopback port whose accept queue is full, so that Linux drops further SYNs: a
    connection attempt times out, as it does when a firewall drops packets."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen(0)
        port = int(sock.getsockname()[1])
        with socket.create_connection(("127.0.0.1", port), timeout=5):
            yield port


def closed_port() -> int:
    """A loopback port with nothing listening: connecting is refused."""
    return free_port()
