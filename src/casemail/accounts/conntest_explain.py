"""Turning whatever goes wrong in a connection test into a CheckFailed naming the field to
fix: DNS, TCP, TLS and timeouts are the same for IMAP, POP3 and SMTP."""

from __future__ import annotations

import socket
import ssl
from collections.abc import Iterator
from contextlib import contextmanager

from casemail.accounts.conntest_common import (
    PROTOCOL_NAMES,
    CheckFailed,
    Phase,
    seconds,
    security_words,
    server_words,
    where,
)
from casemail.accounts.endpoint import Endpoint, default_port
from casemail.accounts.tlsclient import client_tls_context

# OpenSSL's reasons when the peer's first bytes are not a TLS record: a plain-text server.
PLAINTEXT_REASONS = {"WRONG_VERSION_NUMBER", "RECORD_LAYER_FAILURE", "HTTP_REQUEST"}
PLAINTEXT_REASONS |= {"UNKNOWN_PROTOCOL", "PACKET_LENGTH_TOO_LONG", "UNEXPECTED_MESSAGE"}


@contextmanager
def step(phase: Phase, endpoint: Endpoint) -> Iterator[None]:
    """Run one step; an exception inside becomes a CheckFailed naming the field to fix."""
    try:
        yield
    except CheckFailed:
        raise
    except Exception as exc:
        raise explain(exc, endpoint, phase) from exc


def reach(endpoint: Endpoint) -> None:
    """Resolve the host and open (then close) a TCP connection: sorts out host and port
    problems before any protocol is spoken, so that a later silence means the server."""
    with step("connect", endpoint):
        address = (endpoint.host, endpoint.port)
        socket.create_connection(address, timeout=endpoint.connect_timeout).close()


@contextmanager
def greeting(endpoint: Endpoint) -> Iterator[None]:
    """The step that opens a session (blocking protocols); a silent server is examined."""
    try:
        with step("greeting", endpoint):
            yield
    except CheckFailed as failed:
        if failed.silent:
            raise silent_server(endpoint) from failed
        raise


def silent_server(endpoint: Endpoint) -> CheckFailed:
    """The server accepted the connection but said nothing in time. A plain-text client on
    an implicit-TLS port sees exactly this (the server waits for a TLS ClientHello,
    RFC 8314 section 3.2), so ask the port whether it speaks TLS before blaming it."""
    protocol = PROTOCOL_NAMES[endpoint.protocol]
    if endpoint.security != "tls" and _speaks_tls(endpoint):
        return CheckFailed(
            "security",
            f"{where(endpoint)} expects TLS from the first byte (implicit TLS), but security "
            f"is {endpoint.security!r}: set security to 'tls', or use the {protocol} port "
            f"{default_port(endpoint.protocol, endpoint.security)} for {endpoint.security!r}",
        )
    return _no_greeting(endpoint)


def _no_greeting(endpoint: Endpoint) -> CheckFailed:
    protocol = PROTOCOL_NAMES[endpoint.protocol]
    what = "no TLS handshake or greeting" if endpoint.security == "tls" else "no greeting"
    failed = CheckFailed(
        "port",
        f"connected to {where(endpoint)}, but the server sent {what} within "
        f"{seconds(endpoint.connect_timeout)}: is {endpoint.port} the {protocol} port?",
    )
    failed.silent = True
    return failed


def _speaks_tls(endpoint: Endpoint) -> bool:
    context = client_tls_context(verify=False, ca_file=None)
    timeout = min(endpoint.connect_timeout, 5.0)
    try:
        with socket.create_connection((endpoint.host, endpoint.port), timeout=timeout) as sock:
            context.wrap_socket(sock, server_hostname=endpoint.host).close()
    except OSError:
        return False
    return True


def explain(exc: BaseException, endpoint: Endpoint, phase: Phase) -> CheckFailed:
    chain = _chain(exc)
    for kind, explainer in _EXPLAINERS:
        found = next((e for e in chain if isinstance(e, kind)), None)
        if found is not None:
            return explainer(found, endpoint, phase)
    text = server_words(str(exc)) or type(exc).__name__
    return CheckFailed(None, f"{_doing(phase, endpoint)} failed: {text}")


def _chain(exc: BaseException) -> list[BaseException]:
    chain: list[BaseException] = []
    current: BaseException | None = exc
    while current is not None and current not in chain and len(chain) < 10:
        chain.append(current)
        current = current.__cause__ or current.__context__
    return chain


def _doing(phase: Phase, endpoint: Endpoint) -> str:
    protocol = PROTOCOL_NAMES[endpoint.protocol]
    return {
        "connect": f"connecting to {where(endpoint)}",
        "greeting": f"opening the {protocol} session with {where(endpoint)}",
        "tls": f"starting TLS with {where(endpoint)}",
        "login": f"logging in to {where(endpoint)}",
        "command": f"talking {protocol} with {where(endpoint)}",
    }[phase]


def _certificate(exc: BaseException, endpoint: Endpoint, phase: Phase) -> CheckFailed:
    assert isinstance(exc, ssl.SSLCertVerificationError)
    reason = exc.verify_message or exc.reason or str(exc)
    return CheckFailed(
        "verify_tls",
        f"the TLS certificate of {where(endpoint)} was not accepted: {reason}. Add the CA "
        "that signed it (ca_file), fix the certificate on the server, or turn off "
        "verify_tls (the connection is then encrypted but not authenticated)",
        certificate_error=reason,
    )


def _tls(exc: BaseException, endpoint: Endpoint, phase: Phase) -> CheckFailed:
    assert isinstance(exc, ssl.SSLError)
    reason = exc.reason or server_words(str(exc))
    if reason in PLAINTEXT_REASONS:
        return CheckFailed(
            "security",
            f"TLS handshake with {where(endpoint)} failed: the server answered in plain text "
            f"({reason}). Set security to 'starttls' or 'none', or use the TLS port "
            f"{default_port(endpoint.protocol, 'tls')}",
            tls_error=reason,
        )
    return CheckFailed(
        "security", f"TLS handshake with {where(endpoint)} failed: {reason}", tls_error=reason
    )


def _not_found(exc: BaseException, endpoint: Endpoint, phase: Phase) -> CheckFailed:
    why = getattr(exc, "strerror", None) or str(exc)
    return CheckFailed("host", f"the host name {endpoint.host!r} does not resolve ({why})")


def _refused(exc: BaseException, endpoint: Endpoint, phase: Phase) -> CheckFailed:
    protocol = PROTOCOL_NAMES[endpoint.protocol]
    usual = default_port(endpoint.protocol, endpoint.security)
    return CheckFailed(
        "port",
        f"nothing is listening on {where(endpoint)} (connection refused); the usual {protocol} "
        f"port {security_words(endpoint)} is {usual}",
    )


def _timeout(exc: BaseException, endpoint: Endpoint, phase: Phase) -> CheckFailed:
    if phase == "connect":
        return CheckFailed(
            "host",
            f"no answer from {where(endpoint)} within {seconds(endpoint.connect_timeout)}: "
            "check the host and port, and that no firewall drops the connection",
        )
    if phase == "greeting":
        return _no_greeting(endpoint)
    if phase == "tls":
        return CheckFailed(
            "security",
            f"the TLS handshake after STARTTLS got no answer within "
            f"{seconds(endpoint.connect_timeout)} from {where(endpoint)}",
        )
    return CheckFailed(
        None,
        f"{_doing(phase, endpoint)}: no answer within {seconds(endpoint.read_timeout)}",
    )


def _closed(exc: BaseException, endpoint: Endpoint, phase: Phase) -> CheckFailed:
    field_ = "port" if phase in ("connect", "greeting") else None
    return CheckFailed(
        field_, f"{_doing(phase, endpoint)}: the server closed the connection ({exc})"
    )


def _os_error(exc: BaseException, endpoint: Endpoint, phase: Phase) -> CheckFailed:
    """While connecting, an OS error is a network one (no route to host, network down)."""
    why = getattr(exc, "strerror", None) or str(exc)
    return CheckFailed(
        "host" if phase == "connect" else None, f"{_doing(phase, endpoint)} failed: {why}"
    )


_EXPLAINERS = (
    (ssl.SSLCertVerificationError, _certificate),
    (ssl.SSLError, _tls),
    (socket.gaierror, _not_found),
    (ConnectionRefusedError, _refused),
    (TimeoutError, _timeout),
    (ConnectionError, _closed),
    (EOFError, _closed),
    (OSError, _os_error),
)
