"""Endpoints of an account: what the protocol code needs to reach its servers."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from casemail.accounts.endpoint import Endpoint
from casemail.accounts.rules import AccountError
from casemail.db.models import Account


def _secret(account: Account, secrets: dict[str, str], key: str) -> str | None:
    if account.auth_type == "oauth2":
        # The access token comes from the OAuth token store (its own issue); until an
        # account is connected there is none, and the server says so in plain words.
        return secrets.get("oauth_access_token")
    return secrets.get(key)


def incoming_endpoint(
    account: Account, secrets: dict[str, str], *, ca_file: Path | None = None
) -> Endpoint:
    config: dict[str, Any] | None = account.settings.get("incoming")
    if not config:
        raise AccountError(f"account #{account.id} has no incoming server", field="incoming")
    return Endpoint(
        protocol=config["protocol"],
        host=config["host"],
        port=config["port"],
        security=config["security"],
        username=config.get("username") or account.email,
        secret=_secret(account, secrets, "incoming_password"),
        auth=account.auth_type,  # type: ignore[arg-type]
        verify_tls=config.get("verify_tls", True),
        ca_file=ca_file,
        connect_timeout=config.get("connect_timeout", 20.0),
        read_timeout=config.get("read_timeout", 60.0),
        folders=tuple(config.get("folders") or ("INBOX",)),
    )


def outgoing_endpoint(
    account: Account, secrets: dict[str, str], *, ca_file: Path | None = None
) -> Endpoint:
    config: dict[str, Any] | None = account.settings.get("outgoing")
    if not config:
        raise AccountError(f"account #{account.id} has no outgoing server", field="outgoing")
    incoming = account.settings.get("incoming") or {}
    if config.get("same_credentials", True) and incoming:
        username = incoming.get("username") or account.email
        key = "incoming_password"
    else:
        username = config.get("username") or account.email
        key = "outgoing_password"
    return Endpoint(
        protocol="smtp",
        host=config["host"],
        port=config["port"],
        security=config["security"],
        username=username,
        secret=_secret(account, secrets, key),
        auth=account.auth_type,  # type: ignore[arg-type]
        auth_required=config.get("auth_required", True),
        verify_tls=config.get("verify_tls", True),
        ca_file=ca_file,
        connect_timeout=config.get("connect_timeout", 20.0),
        read_timeout=config.get("read_timeout", 60.0),
    )


def sender_address(account: Account) -> str:
    config = account.settings.get("outgoing") or {}
    return str(config.get("from_address") or account.email)
