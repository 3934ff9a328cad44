"""OAuth2 providers: what Microsoft 365 and Google need, and a generic provider given by its
endpoints. Only data; the flow and the token lifecycle live beside this module.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

from casemail.accounts.presets import preset_by_id

ProviderName = Literal["microsoft", "google", "generic"]

# Microsoft identity platform v2.0 endpoints; the tenant is a GUID, a verified domain,
# "organizations" (work accounts only) or "common".
_MICROSOFT = "https://login.microsoftonline.com/{tenant}/oauth2/v2.0/"

# Exchange Online's scopes for IMAP, POP and SMTP AUTH with XOAUTH2, and offline_access
# for a refresh token (Microsoft: "Authenticate an IMAP, POP or SMTP connection using OAuth").
MICROSOFT_SCOPES = (
    "offline_access",
    "https://outlook.office.com/IMAP.AccessAsUser.All",
    "https://outlook.office.com/POP.AccessAsUser.All",
    "https://outlook.office.com/SMTP.Send",
)
# Gmail's IMAP, POP and SMTP accept only the full scope.
GOOGLE_SCOPES = ("https://mail.google.com/",)


# OpenID Connect sign-in asks for these beside the mail scopes (OIDC Core 5.4).
SIGNIN_SCOPES = ("openid", "email", "profile")
TENANT_ID = "{tenantid}"  # in a Microsoft issuer: the ``tid`` claim of the token


@dataclass(frozen=True)
class Provider:
    name: ProviderName
    authorize_url: str
    token_url: str
    scopes: tuple[str, ...]
    # Extra parameters of the authorization request. Google returns a refresh token only
    # with access_type=offline, and again on a later consent only with prompt=consent.
    authorize_params: dict[str, str] = field(default_factory=dict)
    issuer: str | None = None
    jwks_url: str | None = None
    # The mail servers of a personal account made from a sign-in (account settings shape).
    mail_settings: dict[str, Any] | None = None


def microsoft(tenant: str) -> Provider:
    base = _MICROSOFT.format(tenant=tenant)
    # Multi-tenant endpoints ("common", "organizations") sign with each tenant's issuer.
    issuer_tenant = TENANT_ID if tenant in ("common", "organizations") else tenant
    return Provider(
        "microsoft",
        base + "authorize",
        base + "token",
        MICROSOFT_SCOPES,
        issuer=f"https://login.microsoftonline.com/{issuer_tenant}/v2.0",
        jwks_url=f"https://login.microsoftonline.com/{tenant}/discovery/v2.0/keys",
        mail_settings=_mail_settings("microsoft365"),
    )


def google() -> Provider:
    return Provider(
        "google",
        "https://accounts.google.com/o/oauth2/v2/auth",
        "https://oauth2.googleapis.com/token",
        GOOGLE_SCOPES,
        {"access_type": "offline", "prompt": "consent"},
        issuer="https://accounts.google.com",
        jwks_url="https://www.googleapis.com/oauth2/v3/certs",
        mail_settings=_mail_settings("gmail"),
    )


def _mail_settings(preset_id: str) -> dict[str, Any]:
    """IMAP and SMTP of a provider preset, as an account's ``settings``."""
    known = preset_by_id(preset_id)
    assert known is not None
    assert known.imap is not None
    assert known.smtp is not None
    return {
        "incoming": {
            "protocol": "imap",
            "host": known.imap.host,
            "port": known.imap.port,
            "security": known.imap.security,
        },
        "outgoing": {
            "host": known.smtp.host,
            "port": known.smtp.port,
            "security": known.smtp.security,
        },
    }


def preset(name: ProviderName, *, tenant: str | None) -> Provider | None:
    """The endpoints and scopes of a known provider; ``None`` for ``generic``."""
    if name == "microsoft":
        return microsoft(tenant or "common")
    if name == "google":
        return google()
    return None
