"""Values passed between the ingest stages. All frozen: a stage returns new values."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Literal

SourceKind = Literal["smtp", "imap", "pop3", "cli", "api"]
Outcome = Literal[
    "created", "appended", "quarantined", "discarded", "rejected", "duplicate", "pending"
]


@dataclass(frozen=True)
class Source:
    """Where a message came from; recorded with the receipt for the audit trail."""

    kind: SourceKind
    envelope_from: str | None = None
    envelope_to: tuple[str, ...] = ()
    peer: str | None = None
    archive: bool = False  # initial import "as archive": case closed, nothing sent


@dataclass(frozen=True)
class Address:
    email: str
    name: str | None = None


@dataclass(frozen=True)
class ParsedAttachment:
    filename: str | None
    content_type: str
    content_id: str | None
    inline: bool
    data: bytes


@dataclass(frozen=True)
class ParsedMessage:
    message_id: str | None
    in_reply_to: str | None
    references: tuple[str, ...]
    subject: str
    sender: Address | None
    to: tuple[Address, ...]
    cc: tuple[Address, ...]
    date: datetime | None
    text_body: str | None
    html_body: str | None
    attachments: tuple[ParsedAttachment, ...]
    defects: tuple[str, ...]
    # The top-level media type, lower case ("multipart/report" marks a DSN, RFC 3464).
    content_type: str = "text/plain"
    # The header fields the rules read (``RULE_HEADERS`` and every ``X-Casemail-*``), by
    # lower-case name, first occurrence, decoded; ``Authentication-Results`` may repeat.
    header_fields: Mapping[str, str] = field(default_factory=dict)
    auth_results: tuple[str, ...] = ()


@dataclass(frozen=True)
class RuleHit:
    """One reason behind a decision, kept with the message so the API can show why."""

    rule: str
    detail: str

    def as_dict(self) -> dict[str, str]:
        return {"rule": self.rule, "detail": self.detail}


@dataclass(frozen=True)
class IngestResult:
    outcome: Outcome
    inbound_id: int
    case_id: int | None = None
    message_pk: int | None = None
    quarantine_id: int | None = None
    reason: str | None = None
    rule_hits: tuple[RuleHit, ...] = field(default=())


@dataclass(frozen=True)
class ClaimedReceipt:
    """The columns of a claimed receipt that deciding it needs."""

    id: int
    channel_id: int
    raw_sha256: str
    archive: bool
    envelope_to: tuple[str, ...] = ()
    assign_case_id: int | None = None  # an admin's choice: append to this case
