"""OAuth app registrations ("clients"): one per provider for the installation, or per company.

The client secret is write-only (stored encrypted, bound to its row and table); replacing
it is how an admin recovers from an expired secret, which otherwise takes every account of
that provider down with ``invalid_client``.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Self
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, SecretStr, model_validator
from sqlalchemy import delete, func, or_, select
from sqlalchemy.orm import Session

from casemail.accounts.rules import AccountError
from casemail.accounts.schemas import IncomingSettings, OutgoingSettings
from casemail.accounts.secrets import KeyRing
from casemail.db.models import Account, OAuthClient, OAuthFlow
from casemail.oauth.exchange import ClientData
from casemail.oauth.providers import ProviderName, preset

TABLE = OAuthClient.__tablename__
CALLBACK_PATH = "/oauth/callback"
_LOOPBACK = {"127.0.0.1", "::1", "localhost"}


class MailSettings(BaseModel):
    """The servers of a personal account made from a sign-in (no passwords: OAuth2)."""

    model_config = ConfigDict(extra="forbid")

    incoming: IncomingSettings | None = None
    outgoing: OutgoingSettings | None = None


class OAuthClientCreate(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    name: str = Field(min_length=1, max_length=200)
    provider: ProviderName
    client_id: str = Field(min_length=1, max_length=400)
    client_secret: SecretStr | None = Field(
        None, description="Write-only. Leave out for a public client (PKCE only)."
    )
    tenant: str | None = Field(
        None, max_length=200, description="Microsoft: tenant id or domain; default 'common'."
    )
    authorize_url: str | None = Field(None, description="Required for 'generic'.")
    token_url: str | None = Field(None, description="Required for 'generic'.")
    scopes: list[str] | None = Field(None, description="Default: the provider's mail scopes.")
    redirect_uri: str | None = Field(
        None,
        description=f"Exactly as registered at the provider; default <public_url>{CALLBACK_PATH}.",
    )
    company_id: int | None = Field(None, description="Only for this company; default: all.")
    issuer: str | None = Field(
        None, description="OpenID Connect: the ID tokens' issuer; default: the provider's."
    )
    jwks_url: str | None = Field(None, description="OpenID Connect: the signing keys.")
    mail_settings: MailSettings | None = Field(
        None, description="Servers of personal accounts made at sign-in; default: the provider's."
    )

    @model_validator(mode="after")
    def _generic_needs_endpoints(self) -> Self:
        if self.provider == "generic" and not (self.authorize_url and self.token_url):
            raise ValueError("a generic provider needs authorize_url and token_url")
        return self


class OAuthClientUpdate(BaseModel):
    """Only the fields given change; ``client_secret`` replaces the stored one."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    client_id: str | None = Field(None, min_length=1, max_length=400)
    client_secret: SecretStr | None = None
    scopes: list[str] | None = None
    redirect_uri: str | None = None
    issuer: str | None = None
    jwks_url: str | None = None
    mail_settings: MailSettings | None = None


class OAuthClientPublic(BaseModel):
    id: int
    name: str
    provider: str
    client_id: str
    tenant: str | None
    authorize_url: str
    token_url: str
    scopes: list[str]
    redirect_uri: str
    company_id: int | None
    issuer: str | None
    jwks_url: str | None
    mail_settings: dict[str, Any] | None
    has_secret: bool
    accounts: int
    created_at: datetime


def create_client(
    session: Session,
    data: OAuthClientCreate,
    *,
    keys: KeyRing,
    public_url: str,
    allow_private: bool,
) -> OAuthClient:
    known = preset(data.provider, tenant=data.tenant)
    authorize_url = data.authorize_url or (known.authorize_url if known else "")
    token_url = data.token_url or (known.token_url if known else "")
    redirect_uri = data.redirect_uri or public_url.rstrip("/") + CALLBACK_PATH
    jwks_url = data.jwks_url or (known.jwks_url if known else None)
    urls = [("authorize_url", authorize_url), ("token_url", token_url), ("jwks_url", jwks_url)]
    for name, url in urls:
        if url is not None:
            check_url(url, name, allow_private=allow_private)
    mail = (
        data.mail_settings.model_dump(mode="json", exclude_none=True)
        if data.mail_settings
        else None
    )
    check_url(redirect_uri, "redirect_uri", allow_private=allow_private, redirect=True)
    if session.scalar(select(OAuthClient.id).where(OAuthClient.name == data.name)) is not None:
        raise AccountError(f"an OAuth client named {data.name!r} exists", field="name", status=409)
    client = OAuthClient(
        company_id=data.company_id,
        name=data.name,
        provider=data.provider,
        client_id=data.client_id,
        tenant=data.tenant if data.provider == "microsoft" else None,
        authorize_url=authorize_url,
        token_url=token_url,
        scopes=list(data.scopes or (known.scopes if known else ())),
        redirect_uri=redirect_uri,
        issuer=data.issuer or (known.issuer if known else None),
        jwks_url=jwks_url,
        mail_settings=mail or (known.mail_settings if known else None),
    )
    session.add(client)
    session.flush()  # the id binds the encrypted secret to this row
    _store_secret(client, data.client_secret, keys)
    return client


def update_client(
    session: Session,
    client: OAuthClient,
    data: OAuthClientUpdate,
    *,
    keys: KeyRing,
    allow_private: bool,
) -> None:
    if data.client_id is not None:
        client.client_id = data.client_id
    if data.scopes is not None:
        client.scopes = list(data.scopes)
    if data.redirect_uri is not None:
        check_url(data.redirect_uri, "redirect_uri", allow_private=allow_private, redirect=True)
        client.redirect_uri = data.redirect_uri
    if data.client_secret is not None:
        _store_secret(client, data.client_secret, keys)
        _forgive_rejections(session, client)
    if data.issuer is not None:
        client.issuer = data.issuer
    if data.jwks_url is not None:
        check_url(data.jwks_url, "jwks_url", allow_private=allow_private)
        client.jwks_url = data.jwks_url
    if data.mail_settings is not None:
        client.mail_settings = data.mail_settings.model_dump(mode="json", exclude_none=True)
    session.flush()


def _forgive_rejections(session: Session, client: OAuthClient) -> None:
    """A new secret: accounts refused because of the old one are connected again (their
    grants were never lost) and fetched at once."""
    refused = select(Account).where(
        Account.auth_type == "oauth2", Account.oauth_state == "client-rejected"
    )
    for account in session.scalars(refused):
        if _default_client_id(session, account) == client.id:
            account.oauth_state = "connected"
            account.oauth_error = None
            account.next_sync_at = None  # due now


def delete_client(session: Session, client: OAuthClient) -> None:
    users = _account_count(session, client)
    if users:
        raise AccountError(
            f"OAuth client {client.name!r} is used by {users} account(s)", status=409
        )
    # Flows begun with it can no longer finish: they go with it.
    session.execute(delete(OAuthFlow).where(OAuthFlow.client_id == client.id))
    session.delete(client)
    session.flush()


def list_clients(session: Session) -> list[OAuthClient]:
    return list(session.scalars(select(OAuthClient).order_by(OAuthClient.id)))


def client_secret(client: OAuthClient, keys: KeyRing) -> str | None:
    if client.secrets is None:
        return None
    return keys.decrypt(client.id, client.secrets, table=TABLE).get("client_secret")


def find_client(session: Session, ref: int | str) -> OAuthClient:
    if isinstance(ref, int) or ref.isdigit():
        client = session.get(OAuthClient, int(ref))
    else:
        client = session.scalar(select(OAuthClient).where(OAuthClient.name == ref))
    if client is None:
        raise AccountError(f"no OAuth client {ref}", field="oauth_client", status=404)
    return client


def client_for_account(session: Session, account: Account) -> OAuthClient:
    """The account's own client, else the company's, else the installation's for its provider."""
    if account.oauth_client_id is not None:
        return session.get_one(OAuthClient, account.oauth_client_id)
    query = (
        select(OAuthClient)
        .where(
            OAuthClient.provider == account.oauth_provider,
            or_(OAuthClient.company_id == account.company_id, OAuthClient.company_id.is_(None)),
        )
        # The company's own registration first, then the oldest installation-wide one.
        .order_by(OAuthClient.company_id.is_(None), OAuthClient.id)
    )
    client = session.scalars(query.limit(1)).first()
    if client is None:
        raise AccountError(
            f"no OAuth client is registered for {account.oauth_provider}: add one with "
            "`casemail oauth client add` (or POST /api/v1/oauth/clients)",
            field="oauth_client",
        )
    return client


def to_public(session: Session, client: OAuthClient) -> OAuthClientPublic:
    return OAuthClientPublic(
        id=client.id,
        name=client.name,
        provider=client.provider,
        client_id=client.client_id,
        tenant=client.tenant,
        authorize_url=client.authorize_url,
        token_url=client.token_url,
        scopes=list(client.scopes),
        redirect_uri=client.redirect_uri,
        company_id=client.company_id,
        issuer=client.issuer,
        jwks_url=client.jwks_url,
        mail_settings=client.mail_settings,
        has_secret=client.secrets is not None,
        accounts=_account_count(session, client),
        created_at=client.created_at,
    )


def check_url(url: str, field: str, *, allow_private: bool, redirect: bool = False) -> None:
    """HTTPS (RFC 6749 sections 3.1 and 3.2 require TLS at the provider's endpoints). Plain
    HTTP only where private hosts are allowed (development, tests): to a loopback provider,
    or as casemail's own redirect URI (section 3.1.2.1 asks for TLS there too, and loopback
    is always fine, RFC 8252 section 7.3)."""
    try:
        parts = urlsplit(url)
        host = parts.hostname or ""
    except ValueError as exc:
        raise AccountError(f"{field}: not a URL ({exc})", field=field) from exc
    if not host or parts.scheme not in ("http", "https"):
        raise AccountError(f"{field}: {url!r} is not an absolute http(s) URL", field=field)
    if parts.scheme == "https":
        return
    loopback = host in _LOOPBACK
    if (redirect and (allow_private or loopback)) or (allow_private and loopback):
        return
    raise AccountError(f"{field} must be an https:// URL, not {url!r}", field=field)


def _store_secret(client: OAuthClient, secret: SecretStr | None, keys: KeyRing) -> None:
    if secret is None or not secret.get_secret_value():
        client.secrets = None
        return
    values: dict[str, Any] = {"client_secret": secret.get_secret_value()}
    client.secrets = keys.encrypt(client.id, values, table=TABLE)


def _account_count(session: Session, client: OAuthClient) -> int:
    """Accounts that name this client, and those that get it as their provider's default."""
    named = select(func.count()).where(Account.oauth_client_id == client.id)
    by_default = select(Account).where(
        Account.auth_type == "oauth2",
        Account.oauth_client_id.is_(None),
        Account.oauth_provider == client.provider,
        Account.deactivated_at.is_(None),
    )
    defaults = sum(
        1
        for account in session.scalars(by_default)
        if _default_client_id(session, account) == client.id
    )
    return int(session.scalar(named) or 0) + defaults


def _default_client_id(session: Session, account: Account) -> int | None:
    try:
        return client_for_account(session, account).id
    except AccountError:
        return None


def client_data(session: Session, account: Account, keys: KeyRing) -> ClientData:
    """What the token requests of this account need, read once inside a session."""
    return client_data_of(client_for_account(session, account), keys)


def client_data_of(client: OAuthClient, keys: KeyRing) -> ClientData:
    known = preset(client.provider, tenant=client.tenant)  # type: ignore[arg-type]
    return ClientData(
        client_id=client.client_id,
        client_secret=client_secret(client, keys),
        authorize_url=client.authorize_url,
        token_url=client.token_url,
        scopes=tuple(client.scopes),
        redirect_uri=client.redirect_uri,
        authorize_params=tuple(known.authorize_params.items()) if known else (),
        issuer=client.issuer,
        jwks_url=client.jwks_url,
    )
