"""Stage: the decision table. Which situation is this message in, and what does the
channel's table (``ChannelRules.decisions`` over ``DEFAULT_DECISIONS``) do with it?

Rules only describe (``classify.py``, ``thread.py``, ``ratelimit.py``); this module alone
turns their findings into one action, with the reasons kept as rule hits. Then the reply
policies: a reply to a closed case may open a new linked case instead of reopening it, and
a reply under a new subject may split off into a new linked case.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from casemail.channels.rules import Action, ChannelRules, Situation
from casemail.ingest.classify import Classification
from casemail.ingest.store import AnyCase
from casemail.ingest.thread import ThreadMatch
from casemail.ingest.types import RuleHit

# Reply and forward prefixes of the common mail clients, in several languages.
_PREFIX = re.compile(
    r"^\s*(?:(?:re|fwd?|aw|wg|sv|vs|antw|r|rif|tr|odp|res|enc)(?:\[\d+\])?\s*:\s*)+", re.I
)
_TAG = re.compile(r"\[[^\]]*#\s*\d+\s*\]")


@dataclass(frozen=True)
class Route:
    situation: Situation
    action: Action
    hits: tuple[RuleHit, ...]
    case: AnyCase | None = None  # the case to append to
    linked: AnyCase | None = None  # the case a new case is linked to


def situation_of(
    classification: Classification,
    match: ThreadMatch,
    *,
    rate_limited: bool,
    unknown_sender: bool,
) -> Situation:
    kind = classification.kind
    if kind == "loop":
        return "loop"
    if rate_limited:
        return "rate-limited"
    if kind in ("auto-reply", "bulk", "bounce"):
        return f"{kind}-{'to-case' if match.case is not None else 'no-case'}"  # type: ignore[return-value]
    if match.case is not None:
        return "reply"
    return "unknown-sender" if unknown_sender else "new"


def route(
    classification: Classification,
    match: ThreadMatch,
    rules: ChannelRules,
    *,
    subject: str,
    rate_hit: RuleHit | None,
    unknown_sender: bool,
) -> Route:
    situation = situation_of(
        classification, match, rate_limited=rate_hit is not None, unknown_sender=unknown_sender
    )
    action = rules.action_for(situation)
    hits = classification.hits + match.hits + ((rate_hit,) if rate_hit else ())
    if unknown_sender and situation == "unknown-sender":
        hits += (RuleHit("unknown-sender", "the channel takes mail from known senders only"),)
    if action not in ("create-case", "append") or situation in rules.decisions:
        # The table's verdict is worth a hit where it is not the obvious one; where it is,
        # "create-case" or the threading hit already says what happened.
        source = "channel rule" if situation in rules.decisions else "default"
        hits += (RuleHit("decision", f"{situation} → {action} ({source})"),)
    if action == "append" and classification.kind == "normal" and match.case is not None:
        return _reply_policy(situation, match.case, rules, subject, hits)
    case = match.case if action == "append" else None
    return Route(situation, action, hits, case=case, linked=match.linked)


def _reply_policy(
    situation: Situation,
    case: AnyCase,
    rules: ChannelRules,
    subject: str,
    hits: tuple[RuleHit, ...],
) -> Route:
    if case.status == "closed" and rules.closed_case_reply == "new-linked":
        hit = RuleHit("closed-case-new-linked", f"case #{case.id} is closed; new linked case")
        return Route(situation, "create-case", (*hits, hit), linked=case)
    if rules.changed_subject == "split" and normalised_subject(subject) != normalised_subject(
        case.subject
    ):
        hit = RuleHit("changed-subject-split", f"subject differs from case #{case.id}'s")
        return Route(situation, "create-case", (*hits, hit), linked=case)
    return Route(situation, "append", hits, case=case)


def normalised_subject(subject: str) -> str:
    """The subject without reply/forward prefixes and case tags, for comparing threads."""
    # One pass: _PREFIX takes a whole run of prefixes, with the spaces tags leave between.
    return " ".join(_PREFIX.sub("", _TAG.sub(" ", subject)).split()).casefold()
