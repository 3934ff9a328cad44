"""Provider presets: the documented public server settings of the big mail providers.

A preset is found by the domain of an address (``preset_for_domain``) or, for hosted custom
domains, by the host names of the domain's MX records (``preset_for_mx``). Ports follow
RFC 8314: implicit TLS (993, 995, 465) where the provider offers it, else STARTTLS on the
submission port 587 (RFC 6409). Each setting is the one on the provider's own help page
(Microsoft "POP, IMAP, and SMTP settings for Outlook.com" and "Deprecation of Basic
authentication in Exchange Online", Google "Read Gmail messages on other email clients using
POP/IMAP", Yahoo SLN4075, Apple HT202304, Fastmail "Server names and ports", Zoho "Access
via IMAP", GoDaddy "Server and port settings for Workspace Email"), cross-checked against
Thunderbird's ISPDB. Hosts and ports change rarely, but they do change: keep them current.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from casemail.accounts.endpoint import AuthType, Security

UsernameFormat = Literal["email", "localpart"]
OAuthProvider = Literal["microsoft", "google"]


@dataclass(frozen=True)
class ServerPreset:
    host: str
    port: int
    security: Security
    username: UsernameFormat = "email"


@dataclass(frozen=True)
class ProviderPreset:
    id: str
    name: str
    domains: tuple[str, ...]
    mx_suffixes: tuple[str, ...]
    imap: ServerPreset | None
    pop3: ServerPreset | None
    smtp: ServerPreset | None
    auth_types: tuple[AuthType, ...]
    oauth_provider: OAuthProvider | None = None
    notes: tuple[str, ...] = ()


def username_for(email: str, fmt: UsernameFormat) -> str:
    """The login name for ``email`` in the given format."""
    return email.rsplit("@", 1)[0] if fmt == "localpart" else email


def _tls(host: str, port: int, username: UsernameFormat = "email") -> ServerPreset:
    return ServerPreset(host, port, "tls", username)


def _starttls(host: str, port: int = 587) -> ServerPreset:
    return ServerPreset(host, port, "starttls")


_M365_NOTE = (
    "Microsoft 365 no longer accepts basic auth (a password) for IMAP and POP3: use OAuth2. "
    "SMTP AUTH must be enabled for the mailbox by a Microsoft 365 admin."
)
_GOOGLE_NOTE = (
    "Google accepts OAuth2 (scope https://mail.google.com/) or, with 2-Step Verification "
    "on, an app password; the normal account password is refused."
)

_PRESETS: tuple[ProviderPreset, ...] = (
    ProviderPreset(
        id="microsoft365",
        name="Microsoft 365 (Exchange Online)",
        domains=("onmicrosoft.com",),
        mx_suffixes=("mail.protection.outlook.com",),
        imap=_tls("outlook.office365.com", 993),
        pop3=_tls("outlook.office365.com", 995),
        smtp=_starttls("smtp.office365.com"),
        auth_types=("oauth2",),
        oauth_provider="microsoft",
        notes=(_M365_NOTE,),
    ),
    ProviderPreset(
        id="outlook",
        name="Outlook.com / Hotmail / Live",
        domains=(
            "outlook.com",
            "hotmail.com",
            "live.com",
            "msn.com",
            "hotmail.co.uk",
            "live.co.uk",
            "outlook.de",
            "hotmail.de",
            "hotmail.fr",
            "outlook.fr",
        ),
        mx_suffixes=("olc.protection.outlook.com",),
        imap=_tls("outlook.office365.com", 993),
        pop3=_tls("outlook.office365.com", 995),
        smtp=_starttls("smtp-mail.outlook.com"),
        auth_types=("oauth2",),
        oauth_provider="microsoft",
        notes=(
            "Outlook.com requires OAuth2 (Modern Auth); POP and IMAP access must be "
            "switched on in the Outlook.com settings.",
        ),
    ),
    ProviderPreset(
        id="gmail",
        name="Gmail",
        domains=("gmail.com", "googlemail.com"),
        mx_suffixes=(),
        imap=_tls("imap.gmail.com", 993),
        pop3=_tls("pop.gmail.com", 995),
        smtp=_tls("smtp.gmail.com", 465),
        auth_types=("oauth2", "password"),
        oauth_provider="google",
        notes=(_GOOGLE_NOTE,),
    ),
    ProviderPreset(
        id="google-workspace",
        name="Google Workspace",
        domains=(),
        mx_suffixes=("google.com", "googlemail.com"),
        imap=_tls("imap.gmail.com", 993),
        pop3=_tls("pop.gmail.com", 995),
        smtp=_tls("smtp.gmail.com", 465),
        auth_types=("oauth2", "password"),
        oauth_provider="google",
        notes=(_GOOGLE_NOTE, "A Workspace admin may have to allow IMAP or POP for users."),
    ),
    ProviderPreset(
        id="yahoo",
        name="Yahoo Mail",
        domains=(
            "yahoo.com",
            "ymail.com",
            "rocketmail.com",
            "yahoo.co.uk",
            "yahoo.de",
            "yahoo.fr",
            "yahoo.es",
            "yahoo.it",
            "yahoo.com.au",
            "yahoo.co.in",
        ),
        mx_suffixes=("am0.yahoodns.net",),
        imap=_tls("imap.mail.yahoo.com", 993),
        pop3=_tls("pop.mail.yahoo.com", 995),
        smtp=_tls("smtp.mail.yahoo.com", 465),
        auth_types=("password",),
        notes=("Yahoo needs an app password (Account security, Generate app password).",),
    ),
    ProviderPreset(
        id="icloud",
        name="iCloud Mail",
        domains=("icloud.com", "me.com", "mac.com"),
        mx_suffixes=("mail.icloud.com",),
        imap=_tls("imap.mail.me.com", 993, username="localpart"),
        pop3=None,
        smtp=_starttls("smtp.mail.me.com"),
        auth_types=("password",),
        notes=(
            "iCloud needs an app-specific password; it offers no POP3. The IMAP user "
            "name is the part before @ (the full address also works for most accounts).",
        ),
    ),
    ProviderPreset(
        id="fastmail",
        name="Fastmail",
        domains=("fastmail.com", "fastmail.fm", "messagingengine.com"),
        mx_suffixes=("messagingengine.com",),
        imap=_tls("imap.fastmail.com", 993),
        pop3=_tls("pop.fastmail.com", 995),
        smtp=_tls("smtp.fastmail.com", 465),
        auth_types=("password",),
        notes=("Fastmail needs an app password; the account password is refused.",),
    ),
    ProviderPreset(
        id="zoho",
        name="Zoho Mail (personal)",
        domains=("zoho.com", "zohomail.com"),
        mx_suffixes=(),
        imap=_tls("imap.zoho.com", 993),
        pop3=_tls("pop.zoho.com", 995),
        smtp=_tls("smtp.zoho.com", 465),
        auth_types=("password",),
        notes=(
            "Switch on IMAP or POP access in the Zoho Mail settings; with two-factor "
            "authentication use an application-specific password.",
        ),
    ),
    ProviderPreset(
        id="zoho-workplace",
        name="Zoho Workplace (organisation, US data centre)",
        domains=(),
        mx_suffixes=("zoho.com",),
        imap=_tls("imappro.zoho.com", 993),
        pop3=_tls("poppro.zoho.com", 995),
        smtp=_tls("smtppro.zoho.com", 465),
        auth_types=("password",),
        notes=(
            "Organisation accounts use the 'pro' hosts; accounts in other Zoho data "
            "centres use zoho.eu, zoho.in or zoho.com.au instead of zoho.com.",
        ),
    ),
    ProviderPreset(
        id="zoho-workplace-eu",
        name="Zoho Workplace (organisation, EU data centre)",
        domains=(),
        mx_suffixes=("zoho.eu",),
        imap=_tls("imappro.zoho.eu", 993),
        pop3=_tls("poppro.zoho.eu", 995),
        smtp=_tls("smtppro.zoho.eu", 465),
        auth_types=("password",),
        notes=("Switch on IMAP or POP access in the Zoho Mail settings.",),
    ),
    ProviderPreset(
        id="godaddy",
        name="GoDaddy Workspace Email",
        domains=(),
        mx_suffixes=("secureserver.net",),
        imap=_tls("imap.secureserver.net", 993),
        pop3=_tls("pop.secureserver.net", 995),
        smtp=_tls("smtpout.secureserver.net", 465),
        auth_types=("password",),
        notes=(
            "For GoDaddy Workspace Email. Domains on GoDaddy's Microsoft 365 plans have "
            "Microsoft MX records and are detected as Microsoft 365.",
        ),
    ),
)

_BY_ID = {preset.id: preset for preset in _PRESETS}
_BY_DOMAIN = {domain: preset for preset in _PRESETS for domain in preset.domains}


def list_presets() -> tuple[ProviderPreset, ...]:
    return _PRESETS


def preset_by_id(preset_id: str) -> ProviderPreset | None:
    return _BY_ID.get(preset_id)


def _normalise(name: str) -> str:
    return name.strip().rstrip(".").lower()


def preset_for_domain(domain: str) -> ProviderPreset | None:
    """The preset that serves addresses at exactly this domain (``gmail.com``...)."""
    return _BY_DOMAIN.get(_normalise(domain))


def preset_for_mx(mx_host: str) -> ProviderPreset | None:
    """The preset whose MX suffix the host ends with, on a label boundary; the longest
    suffix wins, so ``x.olc.protection.outlook.com`` is Outlook.com, not Microsoft 365."""
    host = _normalise(mx_host)
    best: tuple[int, ProviderPreset] | None = None
    for preset in _PRESETS:
        for suffix in preset.mx_suffixes:
            if (host == suffix or host.endswith("." + suffix)) and (
                best is None or len(suffix) > best[0]
            ):
                best = (len(suffix), preset)
    return best[1] if best else None
