"""A TCP proxy in front of a real server that cuts the connection on cue, for fault tests.

The client talks to ``proxy.port`` in plain text; the proxy reads its command lines:

- ``cut_on``: a command line starting with these bytes (any case) is the cue. The proxy
  forwards it, then at most ``after_bytes`` bytes of the server's answer, and closes both
  sides without a word. With ``after_bytes = 0`` the line never reaches the server (a QUIT
  that is never seen: a POP3 session that dies before its UPDATE state).
- ``refuse``: command lines starting with one of these are answered ``-ERR`` by the proxy
  itself and never reach the server (a POP3 server without UIDL, RFC 1939 section 7).

The settings are plain attributes, read for every line: set ``cut_on = None`` to stop cutting.
``cuts`` counts the connections cut so far.
"""

from __future__ import annotations

import socket
import threading
from contextlib import suppress


class CutProxy:
    host = "127.0.0.1"

    def __init__(
        self,
        target_port: int,
        *,
        cut_on: bytes | None = None,
        after_bytes: int = 0,
        refuse: tuple[bytes, ...] = (),
        target_host: str = "127.0.0.1",
    ) -> None:
        self.target = (target_host, target_port)
        self.cut_on = cut_on
        self.after_bytes = after_bytes
        self.refuse = refuse
        self.cuts = 0
        self._listener = socket.create_server((self.host, 0))
        self._listener.settimeout(0.2)
        self.port: int = self._listener.getsockname()[1]
        self._links: list[_Link] = []
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._accept, name="cut-proxy", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stopping.set()
        self._thread.join(timeout=5)
        self._listener.close()
        for link in self._links:
            link.close()

    def _accept(self) -> None:
        while not self._stopping.is_set():
            try:
                client, _ = self._listener.accept()
            except TimeoutError:
                continue
            client.settimeout(None)
            server = socket.create_connection(self.target, timeout=10)
            server.settimeout(None)
            link = _Link(self, client, server)
            self._links.append(link)
            link.start()


class _Link:
    """One proxied connection: a thread per direction."""

    def __init__(self, proxy: CutProxy, client: socket.socket, server: socket.socket) -> None:
        self.proxy = proxy
        self.client = client
        self.server = server
        self.budget: int | None = None  # server bytes still to pass on after the cue
        self.to_client = threading.Lock()
        self.closed = False

    def start(self) -> None:
        for pump in (self._from_client, self._from_server):
            threading.Thread(target=pump, name="cut-proxy-link", daemon=True).start()

    def _from_client(self) -> None:
        with suppress(OSError), self.client.makefile("rb") as reader:
            for line in iter(reader.readline, b""):
                command = line.upper()
                if any(command.startswith(word.upper()) for word in self.proxy.refuse):
                    self._send_client(b"-ERR not supported here\r\n")
                    continue
                cue = self.proxy.cut_on
                if cue is not None and command.startswith(cue.upper()):
                    if self.proxy.after_bytes <= 0:
                        self.cut()
                        return
                    self.budget = self.proxy.after_bytes
                self.server.sendall(line)
        self.close()

    def _from_server(self) -> None:
        with suppress(OSError):
            while data := self.server.recv(65536):
                if self.budget is not None:
                    data = data[: self.budget]
                    self.budget -= len(data)
                self._send_client(data)
                if self.budget is not None and self.budget <= 0:
                    self.cut()
                    return
        self.close()

    def _send_client(self, data: bytes) -> None:
        with self.to_client:
            self.client.sendall(data)

    def cut(self) -> None:
        if not self.closed:
            self.proxy.cuts += 1
        self.close()

    def close(self) -> None:
        self.closed = True
        for sock in (self.client, self.server):
            with suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
            sock.close()
