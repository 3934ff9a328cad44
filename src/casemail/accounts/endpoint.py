"""What a connection test or a mailbox session needs to reach one server, and the outcome.

These are plain frozen dataclasses so that the protocol code (IMAP, POP3, SMTP) knows
nothing of the database or the API; the account service builds them from an account.
"""

from __future__ import annotations

from dataclasses import dataclass
from dataclasses import field as dc_field
from pathlib import Path
from typing import Any, Literal

Security = Literal["none", "starttls", "tls"]
IncomingProtocol = Literal["imap", "pop3"]
AuthType = Literal["password", "oauth2"]
Direction = Literal["incoming", "outgoing"]

# "Use defaults": the well-known port for each protocol and security (RFC 8314 section 7.3
# for implicit TLS, RFC 6409 for submission on 587; 25 is relay without TLS).
DEFAULT_PORTS: dict[tuple[str, str], int] = {
    ("imap", "none"): 143,
    ("imap", "starttls"): 143,
    ("imap", "tls"): 993,
    ("pop3", "none"): 110,
    ("pop3", "starttls"): 110,
    ("pop3", "tls"): 995,
    ("smtp", "none"): 25,
    ("smtp", "starttls"): 587,
    ("smtp", "tls"): 465,
}


def default_port(protocol: str, security: str) -> int:
    return DEFAULT_PORTS[(protocol, security)]


@dataclass(frozen=True)
class Endpoint:
    """One server and how to log in to it. ``secret`` is a password or, for ``oauth2``, an
    access token; it never appears in ``repr`` (and so never in a log line or traceback)."""

    protocol: Literal["imap", "pop3", "smtp"]
    host: str
    port: int
    security: Security
    username: str | None = None
    secret: str | None = dc_field(default=None, repr=False)
    auth: AuthType = "password"
    auth_required: bool = True
    verify_tls: bool = True
    ca_file: Path | None = None
    connect_timeout: float = 20.0
    read_timeout: float = 60.0
    folders: tuple[str, ...] = ("INBOX",)


@dataclass(frozen=True)
class TestOutcome:
    """The answer of "test incoming" / "test outgoing".

    ``field`` names the account field the admin should fix (``host``, ``port``,
    ``security``, ``verify_tls``, ``username``, ``password``, ``folders``, ``to``...) or is
    None when the test passed or nothing the admin can change is at fault.
    """

    ok: bool
    direction: Direction
    message: str
    field: str | None = None
    details: dict[str, Any] = dc_field(default_factory=dict)

    __test__ = False  # not a pytest test class despite the name
