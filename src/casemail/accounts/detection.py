"""What autodetection returns: the settings it found, how sure it is, and what it tried.

Plain frozen dataclasses, so the account service and the API can turn a ``Detection`` into
a form pre-fill or JSON without knowing how it was found.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Literal

from casemail.accounts.endpoint import AuthType, Security
from casemail.accounts.presets import OAuthProvider, ProviderPreset, ServerPreset, username_for

Protocol = Literal["imap", "pop3", "smtp"]
Source = Literal["preset", "srv", "mx", "autoconfig", "probe", "none"]
Step = Literal["preset", "srv", "mx", "autoconfig", "probe"]
Confidence = Literal["high", "medium", "low", "none"]
Outcome = Literal["found", "not-found", "not-offered", "refused", "failed", "invalid"]


@dataclass(frozen=True)
class ServerSettings:
    """One server to use: ``protocol`` is imap or pop3 for incoming, smtp for outgoing."""

    protocol: Protocol
    host: str
    port: int
    security: Security
    username: str


@dataclass(frozen=True)
class TrailEntry:
    """One thing autodetection looked at (a domain, DNS name, URL or host:port) and what
    came of it. ``refused`` means the host was not allowed (private address)."""

    step: Step
    target: str
    outcome: Outcome
    detail: str = ""


@dataclass
class Trail:
    """Collects trail entries in the order they are decided."""

    entries: list[TrailEntry] = field(default_factory=list)

    def add(self, step: Step, target: str, outcome: Outcome, detail: str = "") -> None:
        self.entries.append(TrailEntry(step, target, outcome, detail))

    def extend(self, entries: list[TrailEntry]) -> None:
        self.entries.extend(entries)


@dataclass(frozen=True)
class Found:
    """What one step found; ``detect`` turns the first one into a Detection."""

    source: Source
    confidence: Confidence
    incoming: ServerSettings | None
    outgoing: ServerSettings | None
    auth_types: tuple[AuthType, ...] = ("password",)
    notes: tuple[str, ...] = ()
    preset: ProviderPreset | None = None


@dataclass(frozen=True)
class Detection:
    email: str
    source: Source
    confidence: Confidence
    incoming: ServerSettings | None = None
    outgoing: ServerSettings | None = None
    preset_id: str | None = None
    auth_types: tuple[AuthType, ...] = ("password",)
    oauth_provider: OAuthProvider | None = None
    notes: tuple[str, ...] = ()
    trail: tuple[TrailEntry, ...] = ()

    @property
    def found(self) -> bool:
        return self.source != "none"

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready: nested settings and trail entries become dicts, tuples lists."""
        return {**asdict(self), "found": self.found}


def _from_preset(protocol: Protocol, server: ServerPreset, email: str) -> ServerSettings:
    return ServerSettings(
        protocol, server.host, server.port, server.security, username_for(email, server.username)
    )


def found_from_preset(
    preset: ProviderPreset, email: str, *, source: Source, confidence: Confidence
) -> Found:
    """The preset's settings for ``email``; IMAP is preferred over POP3 for incoming."""
    incoming = None
    if preset.imap is not None:
        incoming = _from_preset("imap", preset.imap, email)
    elif preset.pop3 is not None:
        incoming = _from_preset("pop3", preset.pop3, email)
    outgoing = _from_preset("smtp", preset.smtp, email) if preset.smtp else None
    return Found(source, confidence, incoming, outgoing, preset.auth_types, preset.notes, preset)


def detection_from(email: str, found: Found, trail: Trail) -> Detection:
    preset = found.preset
    notes = found.notes
    if found.incoming is None:
        notes += ("No incoming server was found; enter it by hand if you need one.",)
    if found.outgoing is None:
        notes += ("No outgoing (SMTP) server was found; enter it by hand if you need one.",)
    return Detection(
        email=email,
        source=found.source,
        confidence=found.confidence,
        incoming=found.incoming,
        outgoing=found.outgoing,
        preset_id=preset.id if preset else None,
        auth_types=found.auth_types,
        oauth_provider=preset.oauth_provider if preset else None,
        notes=notes,
        trail=tuple(trail.entries),
    )
