"""A test OAuth2 authorization server: issues access tokens and answers RFC 7662
token introspection, which is how Dovecot's ``oauth2`` passdb checks XOAUTH2 logins.

The SMTP peer asks the same issuer in-process, so one token works for IMAP, POP3 and SMTP.
"""

from __future__ import annotations

import json
import secrets
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs


class TokenIssuer:
    """Access tokens by username, and an introspection endpoint on a loopback port."""

    def __init__(self) -> None:
        self._tokens: dict[str, str] = {}
        self._lock = threading.Lock()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), _handler_for(self))
        self._thread = threading.Thread(
            target=self._server.serve_forever, name="oauth-introspection", daemon=True
        )

    @property
    def introspection_url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}/introspect"

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        # shutdown() waits for serve_forever to acknowledge; never started, it would wait
        # forever (this hung the sync benchmark at exit).
        if self._thread.is_alive():
            self._server.shutdown()
            self._thread.join(timeout=10)
        self._server.server_close()

    def issue(self, username: str) -> str:
        token = "tok-" + secrets.token_urlsafe(24)
        with self._lock:
            self._tokens[token] = username
        return token

    def revoke(self, token: str) -> None:
        with self._lock:
            self._tokens.pop(token, None)

    def username_for(self, token: str) -> str | None:
        with self._lock:
            return self._tokens.get(token)

    def introspect(self, token: str) -> dict[str, Any]:
        """RFC 7662 section 2.2: ``active`` plus, for an active token, who it belongs to."""
        username = self.username_for(token)
        if username is None:
            return {"active": False}
        return {"active": True, "username": username, "token_type": "Bearer"}


def _handler_for(issuer: TokenIssuer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            form = parse_qs(self.rfile.read(length).decode("ascii", "replace"))
            token = (form.get("token") or [""])[0]
            body = json.dumps(issuer.introspect(token)).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:
            """Quiet: request lines would carry nothing useful (and never a token)."""

    return Handler
