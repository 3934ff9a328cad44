"""The public shape of an account: settings without secrets, test results, warnings."""

from __future__ import annotations

from typing import Any

from casemail.accounts.schemas import (
    AccountPublic,
    IncomingPublic,
    OAuthStatus,
    OutgoingPublic,
    TestRecord,
)
from casemail.db.models import Account
from casemail.mailboxes.retention import removal_warning


def warnings_for(account: Account) -> list[str]:
    """What an admin should know before trusting this account with mail (seed 003 warns
    that removing mail from the server at once leaves no copy anywhere else)."""
    found: list[str] = []
    incoming = account.settings.get("incoming")
    if incoming:
        found.extend(_retention_warnings(incoming))
    for direction in ("incoming", "outgoing"):
        config = account.settings.get(direction)
        if config and config.get("security") == "none":
            found.append(f"{direction}: the connection is not encrypted; passwords travel in clear")
        if config and not config.get("verify_tls", True):
            found.append(f"{direction}: the server certificate is not verified")
    if account.auth_type == "password" and account.oauth_provider == "microsoft":
        found.append(
            "Microsoft 365 no longer accepts passwords for IMAP, POP3 and SMTP: use OAuth2"
        )
    return found


def _retention_warnings(incoming: dict[str, Any]) -> list[str]:
    """Retention settings that remove mail at once, or that cannot do what they say."""
    found: list[str] = []
    keep = incoming.get("leave_on_server", True)
    when_deleted = bool(incoming.get("delete_when_deleted"))
    warning = removal_warning(
        keep, incoming.get("delete_after_days"), delete_when_deleted=when_deleted
    )
    if warning:
        found.append(warning)
    if when_deleted and incoming.get("protocol") != "pop3":
        found.append(
            "delete_when_deleted applies only to POP3: IMAP mail is left on the server "
            "(or moved, with after_fetch) whatever becomes of its case"
        )
    return found


def to_public(account: Account, secrets: dict[str, str]) -> AccountPublic:
    """``secrets`` is only looked at for which passwords exist, never copied."""
    incoming = account.settings.get("incoming")
    outgoing = account.settings.get("outgoing")
    same = bool(outgoing and outgoing.get("same_credentials", True))
    outgoing_key = "incoming_password" if same else "outgoing_password"
    return AccountPublic(
        id=account.id,
        role=account.role,
        owner_user_id=account.owner_user_id,
        owner_team_id=account.owner_team_id,
        is_default=account.is_default,
        name=account.name,
        email=account.email,
        auth=account.auth_type,
        oauth_provider=account.oauth_provider,
        oauth=_oauth_status(account, secrets),
        incoming=IncomingPublic(**incoming, has_password="incoming_password" in secrets)
        if incoming
        else None,
        outgoing=OutgoingPublic(**outgoing, has_password=outgoing_key in secrets)
        if outgoing
        else None,
        incoming_active=account.incoming_active,
        outgoing_active=account.outgoing_active,
        active=account.deactivated_at is None,
        deactivated_at=account.deactivated_at,
        last_test_incoming=TestRecord(
            at=account.incoming_tested_at,
            ok=account.incoming_test_ok,
            message=account.incoming_test_message,
        ),
        last_test_outgoing=TestRecord(
            at=account.outgoing_tested_at,
            ok=account.outgoing_test_ok,
            message=account.outgoing_test_message,
        ),
        warnings=warnings_for(account),
        created_at=account.created_at,
        updated_at=account.updated_at,
    )


def _oauth_status(account: Account, secrets: dict[str, str]) -> OAuthStatus | None:
    if account.auth_type != "oauth2":
        return None
    return OAuthStatus(
        state=account.oauth_state or "not-connected",
        client_id=account.oauth_client_id,
        expires_at=account.oauth_expires_at,
        refreshed_at=account.oauth_refreshed_at,
        error=account.oauth_error,
        has_refresh_token="oauth_refresh_token" in secrets,
    )
