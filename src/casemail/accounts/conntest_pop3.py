"""Test a POP3 account: connect, TLS, log in, STAT, UIDL support. Read-only: no RETR, no
DELE, so QUIT's UPDATE state (RFC 1939 section 6) changes nothing."""

from __future__ import annotations

import base64
import poplib
import ssl
from contextlib import suppress

from casemail.accounts.conntest_common import (
    CheckFailed,
    Passed,
    plural,
    refused_login,
    require_credentials,
    security_words,
    server_words,
    where,
)
from casemail.accounts.conntest_explain import greeting, step
from casemail.accounts.endpoint import Endpoint

Capabilities = dict[str, list[str]]


def check_pop3(endpoint: Endpoint, context: ssl.SSLContext) -> Passed:
    with greeting(endpoint):
        pop = _open(endpoint, context)
    try:
        welcome = server_words(pop.getwelcome())
        capabilities = _capabilities(pop, endpoint)
        if endpoint.security == "starttls":
            capabilities = _stls(pop, endpoint, context, capabilities)
        _login(pop, endpoint, capabilities)
        with step("command", endpoint):
            count, size = pop.stat()  # RFC 1939 section 5
            capabilities = _capabilities(pop, endpoint)  # may change after login (RFC 2449)
            uidl = _uidl_supported(pop, capabilities, count)
        sock = pop.sock
        tls_version = sock.version() if isinstance(sock, ssl.SSLSocket) else None
    finally:
        _close(pop)
    return Passed(
        f"Connected to {where(endpoint)} {security_words(endpoint)} and logged in as "
        f"{endpoint.username}. {plural(count, 'message')} in the mailbox; UIDL "
        + ("supported." if uidl else "NOT supported: messages cannot be tracked reliably."),
        {
            "server_greeting": welcome,
            "capabilities": sorted(" ".join([k, *v]) for k, v in capabilities.items()),
            "folders": ["INBOX"],
            "counts": {"INBOX": count},
            "size": size,
            "uidl": uidl,
            "tls_version": tls_version,
        },
    )


class _POP3(poplib.POP3):
    def __init__(self, host: str, port: int, timeout: float) -> None:
        try:
            super().__init__(host, port, timeout=timeout)
        except BaseException:
            _discard(self)  # poplib leaves the socket open when the greeting fails
            raise


class _POP3TLS(poplib.POP3_SSL):
    def __init__(self, host: str, port: int, timeout: float, context: ssl.SSLContext) -> None:
        try:
            super().__init__(host, port, timeout=timeout, context=context)
        except BaseException:
            _discard(self)
            raise


def _discard(pop: poplib.POP3) -> None:
    for part in (getattr(pop, "file", None), getattr(pop, "sock", None)):
        if part is not None:
            part.close()


def _open(endpoint: Endpoint, context: ssl.SSLContext) -> poplib.POP3:
    pop: poplib.POP3
    if endpoint.security == "tls":
        pop = _POP3TLS(endpoint.host, endpoint.port, endpoint.connect_timeout, context)
    else:
        pop = _POP3(endpoint.host, endpoint.port, endpoint.connect_timeout)
    pop.sock.settimeout(endpoint.read_timeout)  # the greeting is in: from now on, reads
    return pop


def _capabilities(pop: poplib.POP3, endpoint: Endpoint) -> Capabilities:
    """CAPA (RFC 2449) is optional: a server without it has no STLS and no SASL."""
    with step("command", endpoint):
        try:
            return pop.capa()
        except poplib.error_proto:
            return {}


def _stls(
    pop: poplib.POP3, endpoint: Endpoint, context: ssl.SSLContext, capabilities: Capabilities
) -> Capabilities:
    """RFC 2595 section 4: STLS only if CAPA lists it; never log in in plain text instead."""
    if "STLS" not in capabilities:
        raise CheckFailed(
            "security",
            f"{where(endpoint)} does not offer STLS (STARTTLS for POP3), so casemail will not "
            "log in: set security to 'tls' (port 995) if the server supports it",
        )
    with step("tls", endpoint):
        pop.stls(context)
    # RFC 2595 section 4: forget what was learned before TLS and ask again.
    return _capabilities(pop, endpoint)


def _login(pop: poplib.POP3, endpoint: Endpoint, capabilities: Capabilities) -> None:
    username, secret = require_credentials(endpoint)
    with step("login", endpoint):
        try:
            if endpoint.auth == "oauth2":
                _xoauth2(pop, endpoint, username, secret, capabilities)
            else:
                pop.user(username)  # RFC 1939 section 7
                pop.pass_(secret)
        except poplib.error_proto as exc:
            reply = exc.args[0] if exc.args else b""
            words = server_words(reply if isinstance(reply, bytes | str) else str(reply))
            raise refused_login(endpoint, words) from exc


def _xoauth2(
    pop: poplib.POP3, endpoint: Endpoint, user: str, token: str, capabilities: Capabilities
) -> None:
    """AUTH XOAUTH2 (RFC 5034 framing, Google's and Microsoft's XOAUTH2 payload): "+ ",
    then base64("user=U^Aauth=Bearer T^A^A"). A failure comes as a "+ " challenge carrying a
    JSON error, answered by an empty line, then -ERR."""
    sasl = capabilities.get("SASL")
    if capabilities and sasl is not None and "XOAUTH2" not in [m.upper() for m in sasl]:
        raise CheckFailed(
            "auth",
            f"{where(endpoint)} does not offer XOAUTH2 (it offers: {' '.join(sasl)})",
        )
    reply = _exchange(pop, b"AUTH XOAUTH2")
    if reply.startswith(b"+") and not reply.startswith(b"+OK"):
        payload = f"user={user}\x01auth=Bearer {token}\x01\x01".encode()
        reply = _exchange(pop, base64.b64encode(payload))
        if reply.startswith(b"+") and not reply.startswith(b"+OK"):
            reply = _exchange(pop, b"")
    if not reply.startswith(b"+OK"):
        raise poplib.error_proto(reply)


def _exchange(pop: poplib.POP3, line: bytes) -> bytes:
    """One command line and its one-line reply (poplib has no public SASL support)."""
    pop.sock.sendall(line + b"\r\n")
    reply = pop.file.readline(2048)
    if not reply:
        raise EOFError("the server closed the connection")
    return reply.rstrip(b"\r\n")


def _uidl_supported(pop: poplib.POP3, capabilities: Capabilities, count: int) -> bool:
    if capabilities:
        return "UIDL" in capabilities
    try:
        pop.uidl(1) if count else pop.uidl()  # RFC 1939 section 7: UIDL is optional
    except poplib.error_proto:
        return False
    return True


def _close(pop: poplib.POP3) -> None:
    try:
        pop.quit()
    except (poplib.error_proto, OSError, EOFError):
        with suppress(OSError):
            pop.close()
