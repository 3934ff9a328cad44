"""A TCP proxy between casemail and a mail server that shows and breaks the link.

- ``lines``: every line the client sent, with the number of its connection (readable only
  on a plain-text link), e.g. to count IDLE commands;
- ``drop_all()``: close every connection now (a server restart, a reset link);
- ``freeze()`` / ``thaw()``: a link that goes silent without a FIN or RST; new connections
  are accepted but never answered; ``thaw()`` closes what was frozen and lets traffic pass;
- ``refuse()`` / ``admit()``: new connections are reset at once (a server that is down).

The mail server fixtures in ``tests/mailservers`` cover fault injection at fixed points;
this one is driven from outside while ``casemail serve`` runs.
"""

from __future__ import annotations

import re
import socket
import struct
import threading
from contextlib import suppress


class LinkProxy:
    host = "127.0.0.1"

    def __init__(self, target_port: int, *, target_host: str = "127.0.0.1") -> None:
        self.target = (target_host, target_port)
        self.lines: list[tuple[int, bytes]] = []  # (connection number, line)
        self.connections = 0
        self._lock = threading.Lock()
        self._sockets: list[socket.socket] = []
        self._frozen = threading.Event()
        self._refusing = threading.Event()
        self._stopping = threading.Event()
        self._listener = socket.create_server((self.host, 0))
        self._listener.settimeout(0.1)
        self.port: int = self._listener.getsockname()[1]
        self._thread = threading.Thread(target=self._accept, name="link-proxy", daemon=True)

    def __enter__(self) -> LinkProxy:
        self._thread.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self._stopping.set()
        self._thread.join(timeout=5)
        self._listener.close()
        self.drop_all()

    def commands(self, pattern: bytes, *, tagged: bool = True) -> list[int]:
        """The connection number of each client line that matches ``pattern`` (after the
        tag unless ``tagged=False``), e.g. ``rb"IDLE"``; case-insensitive, the whole line."""
        tag = rb"\S+ " if tagged else b""
        wanted = re.compile(rb"^" + tag + pattern + rb"\r?\n$", re.IGNORECASE)
        with self._lock:
            return [number for number, line in self.lines if wanted.match(line)]

    def drop_all(self) -> None:
        with self._lock:
            sockets, self._sockets = self._sockets, []
        for sock in sockets:
            _close(sock)

    def freeze(self) -> None:
        self._frozen.set()

    def thaw(self) -> None:
        self.drop_all()  # what was frozen stays dead, as after a NAT timeout
        self._frozen.clear()

    def refuse(self) -> None:
        self._refusing.set()
        self.drop_all()

    def admit(self) -> None:
        self._refusing.clear()

    def _accept(self) -> None:
        while not self._stopping.is_set():
            try:
                client, _ = self._listener.accept()
            except TimeoutError:
                continue
            if self._refusing.is_set():
                client.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                client.close()  # an RST: "connection reset by peer"
                continue
            with self._lock:
                self.connections += 1
                number = self.connections
                self._sockets.append(client)
            if self._frozen.is_set():
                continue  # accepted, never answered
            try:
                server = socket.create_connection(self.target, timeout=10)
            except OSError:
                _close(client)
                continue
            server.settimeout(None)
            client.settimeout(None)
            with self._lock:
                self._sockets.append(server)
            threading.Thread(target=self._up, args=(client, server, number), daemon=True).start()
            threading.Thread(target=self._down, args=(server, client), daemon=True).start()

    def _up(self, client: socket.socket, server: socket.socket, number: int) -> None:
        pending = b""
        with suppress(OSError):
            while data := client.recv(65536):
                if self._frozen.is_set():
                    continue
                pending += data
                *complete, pending = pending.split(b"\n")
                with self._lock:
                    self.lines += [(number, line + b"\n") for line in complete]
                server.sendall(data)
        _close(server)
        _close(client)

    def _down(self, server: socket.socket, client: socket.socket) -> None:
        with suppress(OSError):
            while data := server.recv(65536):
                if not self._frozen.is_set():
                    client.sendall(data)
        _close(client)
        _close(server)


def _close(sock: socket.socket) -> None:
    with suppress(OSError):
        sock.shutdown(socket.SHUT_RDWR)
    sock.close()
