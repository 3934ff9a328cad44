"""Provider presets: sane ports and security, unique ids and domains, domain and MX lookups."""

from __future__ import annotations

import pytest

from casemail.accounts.endpoint import default_port
from casemail.accounts.presets import (
    ProviderPreset,
    ServerPreset,
    list_presets,
    preset_by_id,
    preset_for_domain,
    preset_for_mx,
    username_for,
)

PRESETS = list_presets()
REQUIRED = {"microsoft365", "outlook", "gmail", "google-workspace", "yahoo", "icloud"}
REQUIRED |= {"fastmail", "zoho", "godaddy"}


def servers(preset: ProviderPreset) -> list[tuple[str, ServerPreset]]:
    found = [("imap", preset.imap), ("pop3", preset.pop3), ("smtp", preset.smtp)]
    return [(protocol, server) for protocol, server in found if server is not None]


def test_the_required_providers_are_there_with_unique_ids() -> None:
    ids = [preset.id for preset in PRESETS]
    assert len(ids) == len(set(ids))
    assert set(ids) >= REQUIRED


@pytest.mark.parametrize("preset", PRESETS, ids=lambda p: p.id)
def test_every_server_uses_tls_on_the_port_for_its_security(preset: ProviderPreset) -> None:
    assert preset.imap or preset.pop3, "a preset needs an incoming server"
    assert preset.smtp is not None
    for protocol, server in servers(preset):
        assert server.security in ("tls", "starttls"), "no cleartext (RFC 8314)"
        assert server.port == default_port(protocol, server.security), (protocol, server)
        assert server.host == server.host.lower().strip()
        assert "." in server.host
        assert not server.host.endswith(".")


@pytest.mark.parametrize("preset", PRESETS, ids=lambda p: p.id)
def test_auth_types_match_the_oauth_provider(preset: ProviderPreset) -> None:
    assert preset.auth_types, "at least one way to log in"
    assert ("oauth2" in preset.auth_types) == (preset.oauth_provider is not None)
    assert preset.name
    assert all(note.strip() for note in preset.notes)


def test_domains_and_mx_suffixes_are_lower_case_and_unambiguous() -> None:
    domains = [d for preset in PRESETS for d in preset.domains]
    assert len(domains) == len(set(domains))
    suffixes = [s for preset in PRESETS for s in preset.mx_suffixes]
    assert len(suffixes) == len(set(suffixes))
    for name in domains + suffixes:
        assert name == name.lower().strip(". ")


@pytest.mark.parametrize(
    ("domain", "preset_id"),
    [
        ("gmail.com", "gmail"),
        ("GoogleMail.com.", "gmail"),
        ("hotmail.com", "outlook"),
        ("outlook.com", "outlook"),
        ("live.com", "outlook"),
        ("contoso.onmicrosoft.com", None),  # exact domains only
        ("onmicrosoft.com", "microsoft365"),
        ("yahoo.co.uk", "yahoo"),
        ("me.com", "icloud"),
        ("fastmail.com", "fastmail"),
        ("zohomail.com", "zoho"),
        ("example.com", None),
    ],
)
def test_preset_for_domain(domain: str, preset_id: str | None) -> None:
    preset = preset_for_domain(domain)
    assert (preset.id if preset else None) == preset_id


@pytest.mark.parametrize(
    ("mx_host", "preset_id"),
    [
        ("contoso-com.mail.protection.outlook.com.", "microsoft365"),
        ("hotmail-com.olc.protection.outlook.com", "outlook"),
        ("aspmx.l.google.com", "google-workspace"),
        ("SMTP.GOOGLE.COM.", "google-workspace"),
        ("alt1.gmail-smtp-in.l.google.com", "google-workspace"),
        ("aspmx2.googlemail.com", "google-workspace"),
        ("mta5.am0.yahoodns.net", "yahoo"),
        ("mx01.mail.icloud.com", "icloud"),
        ("in1-smtp.messagingengine.com", "fastmail"),
        ("mx.zoho.com", "zoho-workplace"),
        ("mx2.zoho.eu", "zoho-workplace-eu"),
        ("mailstore1.secureserver.net", "godaddy"),
        ("notgoogle.com", None),  # suffixes match on a label boundary
        ("google.com.evil.example", None),
        ("mx.example.net", None),
    ],
)
def test_preset_for_mx(mx_host: str, preset_id: str | None) -> None:
    preset = preset_for_mx(mx_host)
    assert (preset.id if preset else None) == preset_id


def test_microsoft_presets_say_basic_auth_is_gone() -> None:
    m365 = preset_by_id("microsoft365")
    assert m365 is not None
    assert m365.auth_types == ("oauth2",)
    assert m365.oauth_provider == "microsoft"
    assert any("basic auth" in note for note in m365.notes)
    assert preset_by_id("nope") is None


def test_username_formats() -> None:
    assert username_for("jane.doe@icloud.com", "localpart") == "jane.doe"
    assert username_for("jane.doe@icloud.com", "email") == "jane.doe@icloud.com"
    icloud = preset_by_id("icloud")
    assert icloud is not None
    assert icloud.imap is not None
    assert icloud.pop3 is None
    assert icloud.imap.username == "localpart"
