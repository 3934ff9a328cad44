"""Local stand-ins for the internet, for autodetection tests: all on 127.0.0.1.

- ``LocalDNS``: a real DNS server (UDP) answering from a zone dict with dnspython
  (``dns.message.from_wire`` → ``make_response``), NXDOMAIN for names it does not know;
- ``LocalHTTP``: a stdlib HTTP server answering by Host header and path (autoconfig files);
- ``Greeter``: a TCP server that greets like IMAP, POP3 or SMTP (optionally behind TLS).

Each counts what it was asked, so tests can show that nothing was contacted.
"""

from __future__ import annotations

import socket
import socketserver
import ssl
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import dns.asyncresolver
import dns.flags
import dns.message
import dns.name
import dns.rcode
import dns.rdata
import dns.rdataclass
import dns.rdatatype

Zone = dict[tuple[str, str], list[str]]  # (name, type) -> record data, e.g. ("x.example", "A")


class LocalDNS:
    def __init__(self) -> None:
        self.records: dict[tuple[dns.name.Name, dns.rdatatype.RdataType], list[Any]] = {}
        self.queries: list[tuple[str, str]] = []
        outer = self

        class Handler(socketserver.BaseRequestHandler):
            def handle(self) -> None:
                data, sock = self.request
                sock.sendto(outer.answer(data), self.client_address)

        self.server = socketserver.ThreadingUDPServer(("127.0.0.1", 0), Handler)
        self.port = int(self.server.server_address[1])
        threading.Thread(target=self.server.serve_forever, args=(0.05,), daemon=True).start()

    def load(self, zone: Zone) -> None:
        for (name, rdtype), texts in zone.items():
            key = (dns.name.from_text(name), dns.rdatatype.from_text(rdtype))
            rdatas = [dns.rdata.from_text(dns.rdataclass.IN, key[1], text) for text in texts]
            self.records.setdefault(key, []).extend(rdatas)

    def answer(self, wire: bytes) -> bytes:
        query = dns.message.from_wire(wire)
        response = dns.message.make_response(query)
        response.flags |= dns.flags.AA
        question = query.question[0]
        self.queries.append((question.name.to_text(), dns.rdatatype.to_text(question.rdtype)))
        rdatas = self.records.get((question.name, question.rdtype))
        if rdatas:
            rrset = response.find_rrset(
                response.answer, question.name, dns.rdataclass.IN, question.rdtype, create=True
            )
            for rdata in rdatas:
                rrset.add(rdata, ttl=60)
        elif not any(name == question.name for name, _ in self.records):
            response.set_rcode(dns.rcode.NXDOMAIN)
        return response.to_wire()

    def resolver(self) -> dns.asyncresolver.Resolver:
        """A resolver that asks this server only (never /etc/resolv.conf)."""
        resolver = dns.asyncresolver.Resolver(configure=False)
        resolver.nameservers = ["127.0.0.1"]
        resolver.port = self.port
        resolver.timeout = 2.0
        resolver.lifetime = 4.0
        return resolver

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


class LocalHTTP:
    def __init__(self) -> None:
        self.routes: dict[tuple[str, str], tuple[int, bytes]] = {}
        self.requests: list[tuple[str, str]] = []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                host = self.headers.get("Host", "").rsplit(":", 1)[0]
                outer.requests.append((host, self.path))
                route = (host, self.path.split("?", 1)[0])
                status, body = outer.routes.get(route, (404, b"not found"))
                self.send_response(status)
                self.send_header("Content-Type", "application/xml")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = int(self.server.server_address[1])
        threading.Thread(target=self.server.serve_forever, args=(0.05,), daemon=True).start()

    def serve(self, host: str, path: str, body: bytes, status: int = 200) -> None:
        self.routes[(host, path)] = (status, body)

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


class _TCPServer(socketserver.ThreadingTCPServer):
    allow_reuse_address = True
    daemon_threads = True


class Greeter:
    """Sends ``greeting``, reads the client's goodbye line, hangs up."""

    def __init__(self, greeting: bytes, *, tls: ssl.SSLContext | None = None) -> None:
        self.greeting = greeting
        self.connections = 0
        outer = self

        class Handler(socketserver.BaseRequestHandler):
            def handle(self) -> None:
                outer.connections += 1
                sock: socket.socket = self.request
                sock.settimeout(5)
                try:
                    if tls is not None:
                        sock = tls.wrap_socket(sock, server_side=True)
                    sock.sendall(outer.greeting)
                    sock.recv(1024)
                except OSError:
                    return

        self.server = _TCPServer(("127.0.0.1", 0), Handler)
        self.port = int(self.server.server_address[1])
        threading.Thread(target=self.server.serve_forever, args=(0.05,), daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
