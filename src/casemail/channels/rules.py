"""A channel's ingest rules: what the decision table does per situation, and the options
behind threading, routing, the sender rate limit and structured fields.

Stored as JSON on the channel and validated here on every write and read, so a rule the
pipeline cannot follow is refused with a clear message instead of failing mail later.
"""

from __future__ import annotations

import functools
import json
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

Action = Literal["create-case", "append", "quarantine", "discard", "reject"]
Situation = Literal[
    "new",  # ordinary mail that threads onto no case
    "reply",  # ordinary mail that threads onto a case
    "auto-reply-to-case",  # RFC 3834 auto-reply that threads onto a case
    "auto-reply-no-case",
    "bulk-to-case",  # Precedence: bulk/list, List-* (newsletters, mailing lists)
    "bulk-no-case",
    "bounce-to-case",  # a DSN about a message of a case
    "bounce-no-case",
    "loop",  # our own automatic mail coming back
    "rate-limited",  # a sender over the channel's rate limit
    "unknown-sender",  # a stranger writing to a channel that takes known senders only
]

DEFAULT_DECISIONS: dict[Situation, Action] = {
    "new": "create-case",
    "reply": "append",
    "auto-reply-to-case": "append",
    "auto-reply-no-case": "quarantine",
    "bulk-to-case": "append",
    "bulk-no-case": "quarantine",
    "bounce-to-case": "append",
    "bounce-no-case": "quarantine",
    # Never "quarantine" by default: the admin notice could come back and loop again.
    "loop": "discard",
    "rate-limited": "quarantine",
    "unknown-sender": "reject",
}

_HOLD: frozenset[Action] = frozenset({"quarantine", "discard", "reject"})
# Automatic mail never opens a case (issue 5), and mail without a case cannot be appended.
_ALLOWED: dict[Situation, frozenset[Action]] = {
    "new": _HOLD | {"create-case"},
    "reply": _HOLD | {"append"},
    "auto-reply-to-case": _HOLD | {"append"},
    "auto-reply-no-case": _HOLD,
    "bulk-to-case": _HOLD | {"append"},
    "bulk-no-case": _HOLD,
    "bounce-to-case": _HOLD | {"append"},
    "bounce-no-case": _HOLD,
    "loop": _HOLD,
    "rate-limited": _HOLD,
    "unknown-sender": _HOLD | {"create-case"},
}


class RateLimit(BaseModel):
    model_config = ConfigDict(extra="forbid")

    messages: int = Field(100, ge=0, le=100_000, description="0 turns the limit off")
    minutes: int = Field(10, ge=1, le=24 * 60)


class ChannelRules(BaseModel):
    """Every option has a default, so ``{}`` is a complete, sensible rule set. Frozen:
    ``load_rules`` hands the same object to every caller."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    team_id: int | None = Field(None, description="team that gets the channel's new cases")
    decisions: dict[Situation, Action] = Field(
        default_factory=dict, description="overrides of the default decision table"
    )
    closed_case_reply: Literal["reopen", "new-linked"] = "reopen"
    changed_subject: Literal["stay", "split"] = "stay"
    known_senders_only: bool = False
    acknowledge_new_cases: bool = False
    notify_quarantine: bool = True
    cc_sender_on_quarantine: bool = Field(
        False,
        description="Seed 004: the notice about a held message also goes to its sender, in "
        "CC, so they know it did not get through. Only for mail a person wrote (never for "
        "auto-replies, bulk mail, bounces, loops or a sender over the rate limit), and at "
        "most one notice per sender and channel every 10 minutes. The sender sees who else "
        "the notice went to (the error address, or the admins).",
    )
    rate_limit: RateLimit = Field(default_factory=lambda: RateLimit())
    structured_fields: list[str] = Field(default_factory=list, max_length=4)
    trusted_senders: list[str] = Field(
        default_factory=list, description="addresses, @domain or *.domain allowed to set fields"
    )
    require_dkim: bool = Field(False, description="structured fields need a trusted DKIM pass")
    trusted_authserv_ids: list[str] = Field(
        default_factory=list, description="Authentication-Results authserv-ids to believe"
    )

    @field_validator("structured_fields")
    @classmethod
    def _field_names(cls, names: list[str]) -> list[str]:
        from casemail.ingest.fields import validate_field_names

        return validate_field_names(names)

    @model_validator(mode="after")
    def _allowed_actions(self) -> ChannelRules:
        for situation, action in self.decisions.items():
            if action not in _ALLOWED[situation]:
                allowed = ", ".join(sorted(_ALLOWED[situation]))
                raise ValueError(f"{situation!r} cannot be {action!r}; choose one of {allowed}")
        return self

    def action_for(self, situation: Situation) -> Action:
        return self.decisions.get(situation, DEFAULT_DECISIONS[situation])


def load_rules(stored: dict[str, Any] | None) -> ChannelRules:
    """The rules of a channel's stored JSON. Validated once per distinct document: the
    pipeline asks for every message, and the rules of a channel rarely change."""
    return _validated(json.dumps(stored or {}, sort_keys=True))


@functools.lru_cache(maxsize=256)
def _validated(document: str) -> ChannelRules:
    return ChannelRules.model_validate_json(document)
