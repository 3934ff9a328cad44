"""Create, change, deactivate and choose default accounts.

Every function works inside the caller's transaction and raises ``AccountError`` before
anything is written when a rule fails, so an account is never saved half-way.
"""

from __future__ import annotations

from typing import Any

from pydantic import SecretStr, ValidationError
from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from casemail.accounts import rules
from casemail.accounts.rules import AccountError
from casemail.accounts.schemas import AccountCreate, AccountUpdate, IncomingConfig, OutgoingConfig
from casemail.accounts.secrets import KeyRing
from casemail.auth.tenancy import owning_company
from casemail.db.models import Account, OAuthClient, OAuthFlow, OutboxEntry
from casemail.db.types import utcnow
from casemail.users.service import UserError, find_team, find_user

_SECRET_FIELDS = {"incoming": "incoming_password", "outgoing": "outgoing_password"}


def create_account(
    session: Session, data: AccountCreate, *, keys: KeyRing, allow_private: bool
) -> tuple[Account, list[str]]:
    """Validate and insert; returns the account and warnings (e.g. a host not in DNS)."""
    user_id, team_id = _owners(session, data.user, data.team)
    rules.check_owner(data.role, user_id, team_id)
    outgoing = _own_credentials_without_incoming(data.incoming, data.outgoing)
    secrets = _new_secrets({}, data.incoming, outgoing)
    _check(data.auth, data.oauth_provider, data.email, data.incoming, outgoing, secrets)
    warnings = rules.check_hosts(data.incoming, outgoing, allow_private=allow_private)
    account = Account(
        company_id=owning_company(session),
        role=data.role,
        owner_user_id=user_id,
        owner_team_id=team_id,
        name=data.name,
        email=data.email,
        auth_type=data.auth,
        oauth_provider=data.oauth_provider,
        oauth_token_ref=data.oauth_token_ref,
        oauth_client_id=_oauth_client_id(session, data.oauth_client, data.oauth_provider),
        oauth_state="not-connected" if data.auth == "oauth2" else None,
        settings=_settings(data.incoming, outgoing),
        incoming_active=_active(data.incoming_active, data.incoming),
        outgoing_active=_active(data.outgoing_active, outgoing),
    )
    session.add(account)
    session.flush()  # the id binds the encrypted secrets to this row
    account.secrets = keys.encrypt(account.id, secrets) if secrets else None
    rules.check_system_separate(session, account)
    if data.is_default:
        set_default(session, account)
    return account, warnings


def update_account(
    session: Session, account: Account, data: AccountUpdate, *, keys: KeyRing, allow_private: bool
) -> list[str]:
    _require_active(account)
    incoming = _merged(IncomingConfig, account.settings.get("incoming"), data, "incoming")
    outgoing = _merged(OutgoingConfig, account.settings.get("outgoing"), data, "outgoing")
    stored = stored_secrets(account, keys)
    secrets = _new_secrets(stored, incoming, outgoing, patch=(data.incoming, data.outgoing))
    email = data.email or account.email
    auth = data.auth or account.auth_type
    provider = data.oauth_provider or account.oauth_provider
    _check(auth, provider, email, incoming, outgoing, secrets)
    warnings = rules.check_hosts(incoming, outgoing, allow_private=allow_private)
    changes = data.model_dump(
        exclude_unset=True, exclude={"incoming", "outgoing", "is_default", "oauth_client"}
    )
    if "oauth_client" in data.model_fields_set:
        account.oauth_client_id = _oauth_client_id(session, data.oauth_client, provider)
    if auth == "oauth2" and account.oauth_state is None:
        account.oauth_state = "not-connected"
    for key, column in (("auth", "auth_type"),):
        if key in changes:
            changes[column] = changes.pop(key)
    for key, value in changes.items():
        if value is not None:
            setattr(account, key, value)
    account.settings = _settings(incoming, outgoing)
    account.secrets = keys.encrypt(account.id, secrets) if secrets else None
    if data.incoming is not None or data.outgoing is not None:
        _forget_tests(account)  # new settings must be verified again
    account.updated_at = utcnow()
    session.flush()
    rules.check_system_separate(session, account)
    if data.is_default is True:
        set_default(session, account)
    elif data.is_default is False:
        account.is_default = False
    return warnings


def set_default(session: Session, account: Account) -> None:
    """Make ``account`` the default of its owner (or the company's current global/system
    account). Replacing a current global or system account needs the new one verified
    first: the old one keeps working until then (the migration path in seed 002)."""
    _require_active(account)
    scope = _default_scope(account)
    current = session.scalar(select(Account).where(*scope, Account.is_default.is_(True)))
    replacing = current is not None and current.id != account.id
    if replacing and account.role in ("global", "system") and not is_verified(account):
        assert current is not None
        raise AccountError(
            f"test this account first: #{current.id} ({current.name}) stays the {account.role} "
            "account until the new one passes test incoming and test outgoing",
            field="is_default",
            status=409,
        )
    session.execute(update(Account).where(*scope).values(is_default=False))
    session.flush()
    account.is_default = True
    session.flush()


def deactivate(session: Session, account: Account) -> None:
    """Accounts are never hard-deleted while anything references them; they go inactive."""
    if account.is_default and account.role in ("global", "system"):
        others = select(func.count()).select_from(Account)
        others = others.where(Account.role == account.role, Account.id != account.id)
        if session.scalar(others.where(Account.deactivated_at.is_(None))):
            raise AccountError(
                f"#{account.id} is the current {account.role} account: make the new one the "
                "default first (after testing it), then deactivate this one",
                field="is_default",
                status=409,
            )
    account.deactivated_at = account.deactivated_at or utcnow()
    account.incoming_active = False
    account.outgoing_active = False
    account.is_default = False
    account.updated_at = utcnow()
    session.flush()


def delete_account(session: Session, account: Account) -> None:
    references = session.scalar(
        select(func.count()).select_from(OutboxEntry).where(OutboxEntry.account_id == account.id)
    )
    if references:
        raise AccountError(
            f"account #{account.id} is referenced by {references} message(s): deactivate it "
            "instead; its history must stay readable",
            status=409,
        )
    session.delete(account)
    session.flush()


def is_verified(account: Account) -> bool:
    incoming_ok = not account.settings.get("incoming") or account.incoming_test_ok is True
    outgoing_ok = not account.settings.get("outgoing") or account.outgoing_test_ok is True
    return incoming_ok and outgoing_ok


def stored_secrets(account: Account, keys: KeyRing) -> dict[str, str]:
    return keys.decrypt(account.id, account.secrets) if account.secrets else {}


def _own_credentials_without_incoming(
    incoming: IncomingConfig | None, outgoing: OutgoingConfig | None
) -> OutgoingConfig | None:
    """ "Same credentials as incoming" is the default, but means nothing for an account
    that only sends: then the outgoing server has its own login, unless said otherwise."""
    if outgoing is None or incoming is not None or "same_credentials" in outgoing.model_fields_set:
        return outgoing
    return outgoing.model_copy(update={"same_credentials": False})


def _check(
    auth: str,
    provider: str | None,
    email: str,
    incoming: IncomingConfig | None,
    outgoing: OutgoingConfig | None,
    secrets: dict[str, str],
) -> None:
    rules.check_auth(auth, provider)
    rules.check_passwords(auth, incoming, outgoing, secrets)
    rules.check_send_as(email, outgoing)


def _oauth_client_id(session: Session, ref: int | str | None, provider: str | None) -> int | None:
    """The named OAuth app registration, which must be one of the account's provider."""
    if ref is None:
        return None
    client = session.get(OAuthClient, ref) if isinstance(ref, int) or ref.isdigit() else None
    if client is None and isinstance(ref, str):
        client = session.scalar(select(OAuthClient).where(OAuthClient.name == ref))
    if client is None:
        raise AccountError(f"no OAuth client {ref}", field="oauth_client")
    if client.provider != provider:
        raise AccountError(
            f"OAuth client {client.name!r} is for {client.provider}, not {provider}",
            field="oauth_client",
        )
    return client.id


def _default_scope(account: Account) -> list[Any]:
    if account.role == "personal":
        return [Account.role == "personal", Account.owner_user_id == account.owner_user_id]
    if account.role == "team":
        return [Account.role == "team", Account.owner_team_id == account.owner_team_id]
    return [Account.role == account.role, Account.company_id == account.company_id]


def _owners(session: Session, user: int | str | None, team: int | str | None) -> tuple[Any, Any]:
    try:
        user_id = find_user(session, user).id if user is not None else None
        team_id = find_team(session, team).id if team is not None else None
    except UserError as exc:
        raise AccountError(str(exc), field="user" if user is not None else "team") from exc
    return user_id, team_id


def _settings(incoming: IncomingConfig | None, outgoing: OutgoingConfig | None) -> dict[str, Any]:
    settings: dict[str, Any] = {}
    if incoming is not None:
        settings["incoming"] = incoming.model_dump(mode="json", exclude={"password"})
    if outgoing is not None:
        settings["outgoing"] = outgoing.model_dump(mode="json", exclude={"password"})
    return settings


def _new_secrets(
    stored: dict[str, str],
    incoming: IncomingConfig | None,
    outgoing: OutgoingConfig | None,
    *,
    patch: tuple[dict[str, Any] | None, dict[str, Any] | None] | None = None,
) -> dict[str, str]:
    """Stored secrets, with the passwords given now; a password left out of an update is
    kept, an explicit null removes it, a removed direction takes its password along."""
    secrets = dict(stored)
    for key, config, given in zip(
        _SECRET_FIELDS.values(), (incoming, outgoing), patch or (None, None), strict=True
    ):
        if config is None or (given is not None and given.get("password", "") is None):
            secrets.pop(key, None)
        elif isinstance(config.password, SecretStr):
            secrets[key] = config.password.get_secret_value()
    return secrets


def _merged(
    model: type[IncomingConfig] | type[OutgoingConfig],
    stored: dict[str, Any] | None,
    data: AccountUpdate,
    direction: str,
) -> Any:
    """The stored settings of one direction with the update's keys; an explicit null for
    the whole direction removes it."""
    patch: dict[str, Any] | None = getattr(data, direction)
    if patch is None:
        removed = direction in data.model_fields_set
        return None if removed or not stored else model.model_validate(stored)
    merged = {**(stored or {}), **patch}
    if ("protocol" in patch or "security" in patch) and "port" not in patch:
        merged["port"] = None  # "use defaults" again for the new protocol or security
    try:
        return model.model_validate(merged)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in (direction, *first["loc"]))
        raise AccountError(f"{where}: {first['msg']}", field=where) from exc


def _active(flag: bool | None, config: object | None) -> bool:
    return (config is not None) if flag is None else (flag and config is not None)


def _forget_tests(account: Account) -> None:
    account.incoming_tested_at = account.outgoing_tested_at = None
    account.incoming_test_ok = account.outgoing_test_ok = None
    account.incoming_test_message = account.outgoing_test_message = None


def _require_active(account: Account) -> None:
    if account.deactivated_at is not None:
        raise AccountError(f"account #{account.id} is deactivated", status=409)


def reencrypt_all(session: Session, keys: KeyRing) -> int:
    """Re-encrypt every secret (accounts, OAuth clients, OAuth flows in progress) with the
    newest key; returns how many rows."""
    rows: list[Account | OAuthClient | OAuthFlow] = [
        *session.scalars(select(Account).where(Account.secrets.is_not(None))),
        *session.scalars(select(OAuthClient).where(OAuthClient.secrets.is_not(None))),
        *session.scalars(select(OAuthFlow).where(OAuthFlow.secrets.is_not(None))),
    ]
    for row in rows:
        assert row.secrets is not None
        # Refuse to rotate a blob that belongs to another row.
        keys.decrypt(row.id, row.secrets, table=row.__tablename__)
        row.secrets = keys.rotate(row.secrets)
    session.flush()
    return len(rows)
