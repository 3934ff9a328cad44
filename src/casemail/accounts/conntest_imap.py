"""Test an IMAP account: connect, TLS, log in, list folders, count messages. Read-only: the
folders are counted with STATUS (RFC 3501 section 6.3.10), never selected for writing."""

from __future__ import annotations

import ssl
from contextlib import suppress
from typing import Any

from imapclient import IMAPClient, SocketTimeout
from imapclient.exceptions import IMAPClientAbortError, IMAPClientError

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

# LIST flags of names that cannot hold messages (RFC 3501 section 7.2.2, RFC 5258).
UNSELECTABLE = {"\\noselect", "\\nonexistent"}


def check_imap(endpoint: Endpoint, context: ssl.SSLContext) -> Passed:
    client = open_imap(endpoint, context)
    try:
        welcome = server_words(client.welcome or b"")
        if endpoint.security == "starttls":
            _starttls(client, endpoint, context)
        _login(client, endpoint)
        capabilities, folders, counts = _survey(client, endpoint)
        tls_version = _tls_version(client)
    finally:
        _close(client)
    summary = "; ".join(f"{name}: {plural(count, 'message')}" for name, count in counts.items())
    return Passed(
        f"Connected to {where(endpoint)} {security_words(endpoint)} and logged in as "
        f"{endpoint.username}. {summary}",
        {
            "server_greeting": welcome,
            "capabilities": capabilities,
            "folders": folders,
            "counts": counts,
            "tls_version": tls_version,
        },
    )


def open_imap(endpoint: Endpoint, context: ssl.SSLContext) -> Any:
    """Connect and read the greeting (implicit TLS first where the endpoint says so); the
    connection test and the mailbox sync both start here."""
    with greeting(endpoint):
        return IMAPClient(
            endpoint.host,
            port=endpoint.port,
            ssl=endpoint.security == "tls",
            ssl_context=context,
            timeout=SocketTimeout(connect=endpoint.connect_timeout, read=endpoint.read_timeout),
        )


def _starttls(client: Any, endpoint: Endpoint, context: ssl.SSLContext) -> None:
    """RFC 3501 section 6.2.1 / RFC 2595 section 3.1: STARTTLS only if advertised; never go
    on in plain text when it is not (a man in the middle can strip it)."""
    with step("greeting", endpoint):
        offered = client.has_capability("STARTTLS")
    if not offered:
        raise CheckFailed(
            "security",
            f"{where(endpoint)} does not offer STARTTLS, so casemail will not log in: set "
            "security to 'tls' (port 993) if the server supports it",
        )
    with step("tls", endpoint):
        client.starttls(context)


def _login(client: Any, endpoint: Endpoint) -> None:
    username, secret = require_credentials(endpoint)
    if endpoint.auth == "password" and client.has_capability("LOGINDISABLED"):
        # RFC 3501 section 6.2.3: the server refuses LOGIN on this (unencrypted) connection.
        raise CheckFailed(
            "security",
            f"{where(endpoint)} refuses logins without TLS (LOGINDISABLED): set security to "
            "'starttls' or 'tls'",
        )
    with step("login", endpoint):
        try:
            if endpoint.auth == "oauth2":
                client.oauth2_login(username, secret)
            elif not secret.isascii() and client.has_capability("AUTH=PLAIN"):
                # LOGIN's quoted strings are ASCII only; SASL PLAIN is UTF-8 (RFC 4616).
                client.plain_login(username, secret)
            else:
                client.login(username, secret)
        except IMAPClientAbortError:
            raise  # the connection broke: not a refusal (step() words it)
        except IMAPClientError as exc:
            raise refused_login(endpoint, _reply_words(str(exc))) from exc


def _reply_words(reply: str) -> str:
    """imaplib puts the server's words in a bytes repr: b'[AUTHENTICATIONFAILED] ...'."""
    if reply[:2] in ("b'", 'b"') and reply[-1:] == reply[1]:
        reply = reply[2:-1]
    return server_words(reply)


def _survey(client: Any, endpoint: Endpoint) -> tuple[list[str], list[str], dict[str, int]]:
    """Capabilities, all folders, and the message count of each wanted folder."""
    with step("command", endpoint):
        capabilities = sorted(server_words(c) for c in client.capabilities())
        folders = [
            str(name)
            for flags, _delimiter, name in client.list_folders()
            if not UNSELECTABLE & {server_words(flag).lower() for flag in flags}
        ]
        wanted = _find_folders(endpoint.folders, folders)
        counts = {name: _count(client, name) for name in wanted}
    return capabilities, folders, counts


def _find_folders(wanted: tuple[str, ...], existing: list[str]) -> list[str]:
    """The server's names for the wanted folders; INBOX matches in any case (RFC 3501
    section 5.1)."""
    by_name = {name: name for name in existing}
    by_name.update({name.upper(): name for name in existing if name.upper() == "INBOX"})
    missing = [f for f in wanted if (f.upper() if f.upper() == "INBOX" else f) not in by_name]
    if missing:
        raise CheckFailed(
            "folders",
            f"no folder {', '.join(map(repr, missing))} on the server; the folders that exist "
            f"are: {', '.join(existing) or '(none)'}",
            missing=missing,
            folders=existing,
        )
    return [by_name[f.upper() if f.upper() == "INBOX" else f] for f in wanted]


def _count(client: Any, folder: str) -> int:
    return int(client.folder_status(folder, ["MESSAGES"])[b"MESSAGES"])


def _tls_version(client: Any) -> str | None:
    sock = client.socket()
    return sock.version() if isinstance(sock, ssl.SSLSocket) else None


def _close(client: Any) -> None:
    """LOGOUT (RFC 3501 section 6.1.3); a connection already gone is closed quietly."""
    try:
        client.logout()
    except (IMAPClientError, OSError):
        with suppress(IMAPClientError, OSError):
            client.shutdown()
