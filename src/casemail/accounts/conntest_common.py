"""What "test incoming" and "test outgoing" share: the failure type, wording helpers, and the
outcome, from which the secret (password or access token) is scrubbed.

Every step of a connection test runs inside ``conntest_explain.step(phase, endpoint)``;
whatever goes wrong there becomes a ``CheckFailed`` that names the account field to fix.
"""

from __future__ import annotations

import logging
import ssl
from dataclasses import dataclass, field
from typing import Any, Literal

from casemail.accounts.endpoint import Direction, Endpoint, TestOutcome
from casemail.accounts.tlsclient import client_tls_context

log = logging.getLogger("casemail.accounts.conntest")

# connect: TCP; greeting: the server's first words (after the implicit TLS handshake);
# tls: STARTTLS/STLS handshake; login: authentication; command: anything after that.
Phase = Literal["connect", "greeting", "tls", "login", "command"]
MASK = "********"
PROTOCOL_NAMES = {"imap": "IMAP", "pop3": "POP3", "smtp": "SMTP"}


class CheckFailed(Exception):
    """A failed test step, already in words for the admin; ``field`` is what to fix."""

    def __init__(self, field: str | None, message: str, **details: Any) -> None:
        super().__init__(message)
        self.field = field
        self.message = message
        self.details = details
        # The server accepted the TCP connection and then said nothing: see silent_server.
        self.silent = False


@dataclass(frozen=True)
class Passed:
    message: str
    details: dict[str, Any] = field(default_factory=dict)


def where(endpoint: Endpoint) -> str:
    return f"{endpoint.host}:{endpoint.port}"


def plural(count: int, noun: str) -> str:
    return f"{count} {noun}" + ("" if count == 1 else "s")


def seconds(value: float) -> str:
    return f"{value:g} s"


def security_words(endpoint: Endpoint) -> str:
    return {"none": "without TLS", "starttls": "with STARTTLS", "tls": "with TLS"}[
        endpoint.security
    ]


def tls_context(endpoint: Endpoint) -> ssl.SSLContext:
    try:
        return client_tls_context(verify=endpoint.verify_tls, ca_file=endpoint.ca_file)
    except (OSError, ValueError) as exc:
        raise CheckFailed(
            "ca_file", f"the CA file {endpoint.ca_file} cannot be used: {exc}"
        ) from exc


def server_words(text: str | bytes) -> str:
    """A server's reply (bytes or text) as one line of text."""
    if isinstance(text, bytes):
        text = text.decode("utf-8", "replace")
    return " ".join(text.split())


def scrub(value: Any, secret: str | None) -> Any:
    """``value`` with every occurrence of the secret masked, through dicts/lists/tuples."""
    if not secret:
        return value
    if isinstance(value, str):
        return value.replace(secret, MASK)
    if isinstance(value, dict):
        return {scrub(k, secret): scrub(v, secret) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return type(value)(scrub(v, secret) for v in value)
    return value


def require_credentials(endpoint: Endpoint) -> tuple[str, str]:
    """The user name and secret, or the field to fill in."""
    if not endpoint.username:
        raise CheckFailed("username", "no user name is set for this account")
    if not endpoint.secret:
        if endpoint.auth == "oauth2":
            raise CheckFailed("auth", "no OAuth2 access token: sign in with the provider again")
        raise CheckFailed("password", "no password is set for this account")
    return endpoint.username, endpoint.secret


def refused_login(endpoint: Endpoint, reply: str) -> CheckFailed:
    """The server said no to the credentials; ``reply`` is its own words."""
    if endpoint.auth == "oauth2":
        return CheckFailed(
            "auth",
            f"the server refused the OAuth2 access token for {endpoint.username} "
            f'("{reply}"): sign in with the provider again',
            server_reply=reply,
        )
    return CheckFailed(
        "password",
        f'the server refused the login for {endpoint.username} ("{reply}"): check the user '
        "name and the password",
        server_reply=reply,
    )


def finish(direction: Direction, endpoint: Endpoint, result: Passed | CheckFailed) -> TestOutcome:
    """The outcome, scrubbed of the secret, and one log line saying how it went."""
    ok = isinstance(result, Passed)
    message = result.message if ok else result.message[:1].upper() + result.message[1:]
    outcome = TestOutcome(
        ok=ok,
        direction=direction,
        message=scrub(message, endpoint.secret),
        field=None if isinstance(result, Passed) else result.field,
        details=scrub(result.details, endpoint.secret),
    )
    if ok:
        log.info("test %s %s %s: ok", direction, endpoint.protocol, where(endpoint))
    else:
        log.info(
            "test %s %s %s: failed (field %s): %s",
            direction,
            endpoint.protocol,
            where(endpoint),
            outcome.field,
            outcome.message,
        )
    return outcome
