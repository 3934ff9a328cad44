"""OAuth2 providers: what Microsoft 365 and Google need, and a generic provider given by its
endpoints. Only data; the flow and the token lifecycle live beside this module.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

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


@dataclass(frozen=True)
class Provider:
    name: ProviderName
    authorize_url: str
    token_url: str
    scopes: tuple[str, ...]
    # Extra parameters of the authorization request. Google returns a refresh token only
    # with access_type=offline, and again on a later consent only with prompt=consent.
    authorize_params: dict[str, str] = field(default_factory=dict)


def microsoft(tenant: str) -> Provider:
    base = _MICROSOFT.format(tenant=tenant)
    return Provider("microsoft", base + "authorize", base + "token", MICROSOFT_SCOPES)


def google() -> Provider:
    return Provider(
        "google",
        "https://accounts.google.com/o/oauth2/v2/auth",
        "https://oauth2.googleapis.com/token",
        GOOGLE_SCOPES,
        {"access_type": "offline", "prompt": "consent"},
    )


def preset(name: ProviderName, *, tenant: str | None) -> Provider | None:
    """The endpoints and scopes of a known provider; ``None`` for ``generic``."""
    if name == "microsoft":
        return microsoft(tenant or "common")
    if name == "google":
        return google()
    return None
