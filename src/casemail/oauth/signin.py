"""Sign-in with OpenID Connect makes the user's mailbox work (seed 000): a user who signs in
with the provider and grants the mail scopes gets their personal account created, or
updated, from that sign-in, with no further setup.

Only existing, active casemail users can do this (an admin adds people; a sign-in never
creates a user), and only with a verified ID token whose address is theirs.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from casemail.accounts import service
from casemail.accounts.rules import AccountError
from casemail.accounts.schemas import AccountCreate
from casemail.accounts.secrets import KeyRing
from casemail.db.models import Account, OAuthClient, User
from casemail.oauth.idtoken import Identity


class SignInRefused(ValueError):
    """The person signed in at the provider, but casemail will not set them up."""


def personal_account_for(
    session: Session,
    client: OAuthClient,
    identity: Identity,
    *,
    keys: KeyRing,
    allow_private: bool,
) -> Account:
    """The user's personal account for the signed-in address, made OAuth2 with this client."""
    user = _user(session, client, identity.email)
    query = select(Account).where(
        Account.role == "personal",
        Account.owner_user_id == user.id,
        func.lower(Account.email) == identity.email,
        Account.deactivated_at.is_(None),
    )
    account = session.scalars(query.order_by(Account.id)).first()
    if account is None:
        return _create(session, client, user, identity, keys=keys, allow_private=allow_private)
    # From password (or another app) to this sign-in; the mailbox records stay as they are.
    account.auth_type = "oauth2"
    account.oauth_provider = client.provider
    account.oauth_client_id = client.id
    account.oauth_state = account.oauth_state or "not-connected"
    session.flush()
    return account


def _user(session: Session, client: OAuthClient, email: str) -> User:
    user = session.scalar(
        select(User).where(func.lower(User.email) == email, User.active.is_(True))
    )
    if user is None or (client.company_id is not None and user.company_id != client.company_id):
        raise SignInRefused(
            f"{email} signed in, but casemail has no active user with that address: an "
            "admin adds you first (casemail user add)"
        )
    return user


def _create(
    session: Session,
    client: OAuthClient,
    user: User,
    identity: Identity,
    *,
    keys: KeyRing,
    allow_private: bool,
) -> Account:
    settings: dict[str, Any] = dict(client.mail_settings or {})
    if not settings.get("incoming") and not settings.get("outgoing"):
        raise SignInRefused(
            f"OAuth client {client.name!r} names no mail servers for accounts made at sign-in "
            "(mail_settings): an admin sets them, or adds your account by hand"
        )
    has_default = session.scalar(
        select(Account.id).where(
            Account.role == "personal",
            Account.owner_user_id == user.id,
            Account.is_default.is_(True),
        )
    )
    document = {
        "role": "personal",
        "user": user.id,
        "name": identity.name or user.name,
        "email": identity.email,
        "auth": "oauth2",
        "oauth_provider": client.provider,
        "oauth_client": client.id,
        "is_default": has_default is None,
        **settings,
    }
    try:
        account, _warnings = service.create_account(
            session, AccountCreate.model_validate(document), keys=keys, allow_private=allow_private
        )
    except (AccountError, ValueError) as exc:
        raise SignInRefused(f"the personal account could not be made: {exc}") from None
    return account
