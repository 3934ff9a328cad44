"""The rules an account must satisfy before it is saved. Each raises ``AccountError`` with
the field to fix and words an admin understands; nothing is saved when one fails."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from casemail.accounts.hosts import HostNotAllowed, HostNotFound, check_host
from casemail.accounts.schemas import IncomingConfig, OutgoingConfig
from casemail.accounts.validation import address_domain
from casemail.db.models import Account


class AccountError(ValueError):
    """Bad input or a conflict; ``status`` is the HTTP status, ``field`` what to fix."""

    def __init__(self, message: str, *, field: str | None = None, status: int = 422) -> None:
        super().__init__(message)
        self.field = field
        self.status = status


def check_owner(role: str, user_id: int | None, team_id: int | None) -> None:
    if role == "personal" and (user_id is None or team_id is not None):
        raise AccountError("a personal account needs an owner user (and no team)", field="user")
    if role == "team" and (team_id is None or user_id is not None):
        raise AccountError("a team account needs an owner team (and no user)", field="team")
    if role in ("global", "system") and (user_id is not None or team_id is not None):
        raise AccountError(f"a {role} account belongs to the company, not to a user or team")


def check_auth(auth: str, oauth_provider: str | None) -> None:
    if auth == "oauth2" and oauth_provider is None:
        raise AccountError("OAuth2 needs a provider: microsoft or google", field="oauth_provider")


def check_passwords(
    auth: str,
    incoming: IncomingConfig | None,
    outgoing: OutgoingConfig | None,
    stored: dict[str, str],
) -> None:
    """With password auth, every direction that logs in needs a password."""
    if auth != "password":
        return
    if incoming is not None and not stored.get("incoming_password"):
        raise AccountError("incoming needs a password", field="incoming.password")
    if outgoing is None or not outgoing.auth_required:
        return
    key = "incoming_password" if outgoing.same_credentials else "outgoing_password"
    if outgoing.same_credentials and incoming is None:
        raise AccountError(
            "outgoing uses the same credentials as incoming, but there is no incoming server",
            field="outgoing.same_credentials",
        )
    if not stored.get(key):
        raise AccountError("outgoing needs a password", field="outgoing.password")


def check_send_as(email: str, outgoing: OutgoingConfig | None) -> None:
    """The From address must belong to the user domain unless send-as is allowed: most
    providers refuse or rewrite a foreign From, and receivers' DMARC checks fail it."""
    if outgoing is None or outgoing.allow_send_as:
        return
    domain = outgoing.user_domain or address_domain(email)
    sender = outgoing.from_address or email
    if address_domain(sender) != domain:
        raise AccountError(
            f"the From address {sender} is not in the user domain {domain}; use an address "
            "of that domain or allow send-as for this account",
            field="outgoing.from_address",
        )


def check_hosts(
    incoming: IncomingConfig | None, outgoing: OutgoingConfig | None, *, allow_private: bool
) -> list[str]:
    """Refuse private addresses (when not allowed); an unknown name is only a warning, the
    DNS record may come later."""
    warnings: list[str] = []
    for direction, config in (("incoming", incoming), ("outgoing", outgoing)):
        if config is None or config.port is None:
            continue
        try:
            check_host(config.host, config.port, allow_private=allow_private)
        except HostNotAllowed as exc:
            raise AccountError(str(exc), field=f"{direction}.host") from exc
        except HostNotFound as exc:
            warnings.append(f"{direction}: {exc}")
    return warnings


def _logins(account: Account) -> set[tuple[str, str]]:
    """(host, username) of each direction that logs in: the same login is the same
    mailbox, whatever password was typed."""
    logins: set[tuple[str, str]] = set()
    incoming = account.settings.get("incoming")
    incoming_user = ((incoming or {}).get("username") or account.email).lower()
    if incoming:
        logins.add((incoming["host"], incoming_user))
    outgoing = account.settings.get("outgoing")
    if outgoing and outgoing.get("auth_required", True):
        same = outgoing.get("same_credentials", True) and incoming
        user = incoming_user if same else (outgoing.get("username") or account.email).lower()
        logins.add((outgoing["host"], user))
    return logins


def check_system_separate(session: Session, account: Account) -> None:
    """The system account (password resets, alerts) must not log in as the global account:
    a locked or rate-limited office mailbox would silence the product's own notices."""
    other_role = {"system": "global", "global": "system"}.get(account.role)
    if other_role is None:
        return
    mine = _logins(account)
    query = select(Account).where(
        Account.role == other_role, Account.deactivated_at.is_(None), Account.id != account.id
    )
    for other in session.scalars(query):
        shared = mine & _logins(other)
        if shared:
            host, user = sorted(shared)[0]
            raise AccountError(
                "the system account must not share credentials with the global account: "
                f"{other_role} account #{other.id} ({other.name}) logs in as {user} at {host}",
                field="incoming.username" if account.settings.get("incoming") else "outgoing",
                status=409,
            )
