"""Public shapes of the API. Create and public schemas are separate (no ORM leaks)."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from casemail.channels.rules import ChannelRules


class _FromRow(BaseModel):
    model_config = ConfigDict(from_attributes=True)


class ContactPublic(_FromRow):
    id: int
    email: str
    name: str | None


class CasePublic(_FromRow):
    id: int
    channel_id: int
    subject: str
    status: str
    contact: ContactPublic | None
    team_id: int | None
    assignee_user_id: int | None
    linked_case_id: int | None = Field(
        description="The case this one follows (reply to a closed case, split, other team)"
    )
    fields: dict[str, str] = Field(description="Structured fields from trusted machine mail")
    created_at: datetime
    updated_at: datetime
    last_message_at: datetime


class CaseDetail(CasePublic):
    message_count: int


class CaseUpdate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    status: Literal["new", "open", "pending", "closed"] | None = None
    assignee_user_id: int | None = Field(None, description="null: assigned to nobody")
    team_id: int | None = None


class AddressPublic(BaseModel):
    email: str
    name: str | None = None


class AttachmentPublic(_FromRow):
    id: int
    filename: str | None
    content_type: str
    size: int
    sha256: str
    content_id: str | None
    inline: bool


class RuleHitPublic(BaseModel):
    rule: str
    detail: str


class MessagePublic(_FromRow):
    id: int
    case_id: int
    direction: str
    message_id: str | None
    in_reply_to: str | None
    references: list[str]
    subject: str
    from_address: str | None
    from_name: str | None
    to_addresses: list[AddressPublic]
    cc_addresses: list[AddressPublic]
    sent_at: datetime | None
    created_at: datetime
    text_body: str | None
    html_body: str | None
    attachments: list[AttachmentPublic]
    classification: str | None = Field(
        description="normal, auto-reply, bulk or bounce (inbound only)"
    )
    reports_on_outbox_id: int | None = Field(
        description="A bounce: the outbox entry of the message it reports as failed"
    )
    rule_hits: list[RuleHitPublic] = Field(description="Why the pipeline decided as it did")
    parse_defects: list[str]
    outbox_id: int | None = Field(None, description="Outbound: its outbox entry")
    delivery_state: str | None = Field(
        None, description="Outbound: ready, sending, sent, error or cancelled"
    )
    delivery_error: str | None = Field(None, description="Outbound: the server's last words")


class QuarantinePublic(_FromRow):
    id: int
    inbound_id: int
    channel_id: int
    reason_code: str
    reason: str
    state: str
    created_at: datetime
    purge_after: datetime


class InboundPublic(_FromRow):
    id: int
    channel_id: int
    source: str
    envelope_from: str | None
    message_id: str | None
    size: int
    state: str = Field(description="received, processing, done, quarantined, discarded or rejected")
    attempts: int
    last_error: str | None
    rule_hits: list[RuleHitPublic] = Field(
        description="Why mail that made no case was quarantined, discarded or rejected"
    )
    received_at: datetime
    processed_at: datetime | None


class ChannelPublic(_FromRow):
    id: int
    name: str
    address: str
    active: bool
    subject_tag_prefix: str
    allowed_networks: list[str]
    error_address: str | None
    purge_days: int
    account_id: int | None
    rules: ChannelRules
    created_at: datetime


class ChannelCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    address: str = Field(max_length=320, examples=["support@example.com"])
    name: str | None = Field(None, max_length=200)
    allowed_networks: list[str] = Field(
        default_factory=list, description="CIDR ranges allowed to send to this channel."
    )
    subject_tag_prefix: str = Field("Case", min_length=1, max_length=40, pattern=r"^[\w\- ]+$")
    account_id: int | None = Field(None, description="The account whose mailbox feeds it.")


class ChannelUpdate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str | None = Field(None, max_length=200)
    active: bool | None = Field(None, description="An inactive channel quarantines its mail.")
    error_address: str | None = Field(
        None,
        max_length=320,
        description="Where quarantine notices go ('' clears it: then to the company's admins).",
    )
    purge_days: int | None = Field(None, ge=1, le=3650, description="Quarantine kept this long.")
    allowed_networks: list[str] | None = None
    subject_tag_prefix: str | None = Field(None, min_length=1, max_length=40, pattern=r"^[\w\- ]+$")


class Health(BaseModel):
    status: str
    database: str
    details: dict[str, Any] = Field(default_factory=dict)


class ErrorBody(BaseModel):
    detail: str
    field: str | None = None
