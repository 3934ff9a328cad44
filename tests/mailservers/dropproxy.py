"""A TCP proxy that drops connections after a number of bytes, whatever the protocol.

Unlike ``CutProxy`` (which reads plain-text command lines for its cue), this one only counts
the bytes the server sends, so it works under TLS too: the client's TLS session runs end to
end through it, and the cut lands wherever the byte count says, in the middle of a literal
or of a TLS record. Each new connection takes the next budget from ``cut_after`` (a list);
when the list is empty, connections pass untouched. ``freeze()`` makes every link go silent
without closing it (no FIN, no RST): a peer that vanished, which only timeouts notice.
"""

from __future__ import annotations

import socket
import threading
from contextlib import suppress


class DropProxy:
    host = "127.0.0.1"

    def __init__(self, target_port: int, *, target_host: str = "127.0.0.1") -> None:
        self.target = (target_host, target_port)
        self.cut_after: list[int] = []  # server bytes let through, per new connection
        self.cuts = 0
        self.sent: list[int] = []  # server bytes passed on, per connection
        self._listener = socket.create_server((self.host, 0))
        self._listener.settimeout(0.2)
        self.port: int = self._listener.getsockname()[1]
        self._sockets: list[socket.socket] = []
        self._stopping = threading.Event()
        self._frozen = threading.Event()
        self._thread = threading.Thread(target=self._accept, name="drop-proxy", daemon=True)

    def __enter__(self) -> DropProxy:
        self._thread.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self._stopping.set()
        self._thread.join(timeout=5)
        self._listener.close()
        for sock in self._sockets:
            _close(sock)

    def freeze(self) -> None:
        """From now on no byte passes in either direction; nothing is closed."""
        self._frozen.set()

    def drop_all(self) -> None:
        """Close every connection now, as a server restart or a dead link would."""
        for sock in self._sockets:
            _close(sock)

    def _accept(self) -> None:
        while not self._stopping.is_set():
            try:
                client, _ = self._listener.accept()
            except TimeoutError:
                continue
            server = socket.create_connection(self.target, timeout=10)
            for sock in (client, server):
                sock.settimeout(None)
            self._sockets += [client, server]
            budget = self.cut_after.pop(0) if self.cut_after else None
            index = len(self.sent)
            self.sent.append(0)
            threading.Thread(target=self._up, args=(client, server), daemon=True).start()
            threading.Thread(
                target=self._down, args=(server, client, budget, index), daemon=True
            ).start()

    def _up(self, client: socket.socket, server: socket.socket) -> None:
        with suppress(OSError):
            while data := client.recv(65536):
                if not self._frozen.is_set():
                    server.sendall(data)
        _close(server)
        _close(client)

    def _down(
        self, server: socket.socket, client: socket.socket, budget: int | None, index: int
    ) -> None:
        """Server to client, at most ``budget`` bytes; then both sides are closed."""
        with suppress(OSError):
            while data := server.recv(65536):
                if self._frozen.is_set():
                    continue
                if budget is not None:
                    data = data[: budget - self.sent[index]]
                client.sendall(data)
                self.sent[index] += len(data)
                if budget is not None and self.sent[index] >= budget:
                    self.cuts += 1
                    break
        _close(client)
        _close(server)


def _close(sock: socket.socket) -> None:
    with suppress(OSError):
        sock.shutdown(socket.SHUT_RDWR)
    sock.close()
