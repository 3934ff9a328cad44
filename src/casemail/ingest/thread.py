"""Stage: find the case a message belongs to.

Order: the signed reply token in a recipient address (``support+c42x…@``, the Reply-To of
mail we send); In-Reply-To, then References from newest to oldest (RFC 5322 section
3.6.4), against every Message-ID we stored or sent (for a bounce, the Message-ID of the
message it returns comes first); the subject tag ``[<prefix> #<id>]``, trusted only when
the sender is from the case contact's domain or the domain of the case's channel, and the
case belongs to the channel's team, so a stranger cannot write into a case by guessing its
number; last, the signed hidden marker ``[ref:c42x…]`` quoted from mail we sent, for
providers that rewrite Message-IDs.

The database is read once per batch (``ThreadLookups.load``); the messages of a batch are
then threaded in order, each one remembered, so a reply later in the batch finds the case
an earlier message opened.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field

from sqlalchemy import select
from sqlalchemy.orm import Session

from casemail.channels.addresses import domain_of
from casemail.db.models import Case, Channel, Message, OutboxEntry
from casemail.identity import Identity, subject_tag_pattern
from casemail.ingest.store import AnyCase, NewCase
from casemail.ingest.types import ParsedMessage, RuleHit

CHUNK = 500  # values per IN (...) list, well inside SQLite's and PostgreSQL's limits
_MAX_CASE_ID = 2**31 - 1


@dataclass(frozen=True)
class ThreadMatch:
    case: AnyCase | None
    hits: tuple[RuleHit, ...]
    # A case the message names but may not join (another team's subject tag): a new case
    # opened for the message is linked to it.
    linked: AnyCase | None = None


@dataclass(frozen=True)
class ThreadKeys:
    """What one message offers for threading, read once per message."""

    channel: Channel
    parsed: ParsedMessage
    token_case_id: int | None = None
    marker_case_id: int | None = None
    returned_ids: tuple[str, ...] = ()  # a bounce: the Message-IDs of the returned message
    team_id: int | None = None

    @classmethod
    def of(
        cls,
        channel: Channel,
        parsed: ParsedMessage,
        *,
        identity: Identity,
        recipients: tuple[str, ...],
        returned_ids: tuple[str, ...] = (),
        team_id: int | None = None,
    ) -> ThreadKeys:
        token = next(
            (case for a in recipients if (case := identity.case_in_address(a)) is not None), None
        )
        marker = identity.case_in_text(parsed.text_body) or identity.case_in_text(parsed.html_body)
        return cls(channel, parsed, token, marker, returned_ids, team_id)

    def referenced_ids(self) -> list[str]:
        return list(dict.fromkeys(list(self.returned_ids) + referenced_ids(self.parsed)))[:100]


def referenced_ids(parsed: ParsedMessage) -> list[str]:
    ordered = ([parsed.in_reply_to] if parsed.in_reply_to else []) + list(
        reversed(parsed.references)
    )
    return list(dict.fromkeys(ordered))[:100]


def _tag(channel: Channel, parsed: ParsedMessage) -> re.Match[str] | None:
    return subject_tag_pattern(channel.subject_tag_prefix).search(parsed.subject)


def _chunks(values: list[str]) -> Iterable[list[str]]:
    return (values[start : start + CHUNK] for start in range(0, len(values), CHUNK))


@dataclass
class ThreadLookups:
    """The cases a batch of messages can thread onto, read with a few queries."""

    case_of_message_id: dict[str, int] = field(default_factory=dict)
    cases: dict[int, Case] = field(default_factory=dict)
    # Cases opened in this batch: not yet flushed, so known by object, not id.
    new_case_of_message_id: dict[str, NewCase] = field(default_factory=dict)

    @classmethod
    def load(cls, session: Session, batch: list[ThreadKeys]) -> ThreadLookups:
        lookups = cls()
        ids = list(dict.fromkeys(i for keys in batch for i in keys.referenced_ids()))
        for chunk in _chunks(ids):
            sent = select(OutboxEntry.message_id, OutboxEntry.case_id).where(
                OutboxEntry.message_id.in_(chunk), OutboxEntry.case_id.is_not(None)
            )
            stored = select(Message.message_id, Message.case_id).where(
                Message.message_id.in_(chunk)
            )
            # What we stored wins over what we sent: it is the later record of the id.
            for query in (sent, stored):
                lookups.case_of_message_id.update(
                    (mid, case_id) for mid, case_id in session.execute(query) if mid
                )
        case_ids = set(lookups.case_of_message_id.values())
        for keys in batch:
            match = _tag(keys.channel, keys.parsed)
            named = [keys.token_case_id, keys.marker_case_id]
            named.append(int(match.group(1)) if match is not None else None)
            # Case ids are 32-bit: PostgreSQL refuses a larger one in the lookup ("integer
            # out of range"), which used to fail the whole message.
            case_ids.update(i for i in named if i is not None and i <= _MAX_CASE_ID)
        if case_ids:
            found = session.scalars(select(Case).where(Case.id.in_(case_ids))).unique()
            lookups.cases = {case.id: case for case in found}
        return lookups

    def remember(self, message_id: str | None, case: AnyCase) -> None:
        """A message of this batch is on ``case``: later replies to it thread there."""
        if message_id and message_id not in self.case_of_message_id:
            if isinstance(case, NewCase):
                self.new_case_of_message_id.setdefault(message_id, case)
            else:
                self.case_of_message_id[message_id] = case.id
                self.cases.setdefault(case.id, case)

    def _by_message_ids(self, company_id: int, ids: list[str]) -> AnyCase | None:
        for mid in ids:
            case: AnyCase | None = self.new_case_of_message_id.get(mid)
            if case is None and mid in self.case_of_message_id:
                case = self.cases.get(self.case_of_message_id[mid])
            if _visible(case, company_id):
                return case
        return None

    def _signed(self, company_id: int, case_id: int | None) -> AnyCase | None:
        case = self.cases.get(case_id) if case_id is not None else None
        return case if _visible(case, company_id) else None

    def _by_subject_tag(self, keys: ThreadKeys) -> ThreadMatch:
        channel, parsed = keys.channel, keys.parsed
        match = _tag(channel, parsed)
        if match is None:
            return ThreadMatch(None, ())
        case = self.cases.get(int(match.group(1)))
        tag = match.group(0)
        if not _visible(case, channel.company_id):
            return ThreadMatch(None, (RuleHit("subject-tag-unknown", f"{tag}: no such case"),))
        assert isinstance(case, Case)
        if case.team_id is not None and case.team_id != keys.team_id:
            detail = f"{tag} is another team's case; a new case is linked to it"
            return ThreadMatch(None, (RuleHit("subject-tag-other-team", detail),), linked=case)
        sender_domain = domain_of(parsed.sender.email) if parsed.sender else ""
        trusted = {domain_of(case.contact.email) if case.contact else "", _channel_domain(case)}
        if sender_domain and sender_domain in trusted:
            hit = RuleHit("thread-subject-tag", f"{tag} from {sender_domain}")
            return ThreadMatch(case, (hit,))
        detail = f"{tag} ignored: sender domain {sender_domain!r} is not the case contact's"
        return ThreadMatch(None, (RuleHit("subject-tag-untrusted", detail),))

    def find_case(self, keys: ThreadKeys) -> ThreadMatch:
        company_id = keys.channel.company_id
        case = self._signed(company_id, keys.token_case_id)
        if case is not None:
            return ThreadMatch(case, (RuleHit("thread-reply-token", "reply address token"),))
        case = self._by_message_ids(company_id, keys.referenced_ids())
        if case is not None:
            return ThreadMatch(case, (RuleHit("thread-references", "In-Reply-To/References"),))
        by_tag = self._by_subject_tag(keys)
        if by_tag.case is not None:
            return by_tag
        case = self._signed(company_id, keys.marker_case_id)
        if case is not None:
            hit = RuleHit("thread-marker", "case marker quoted from our mail")
            return ThreadMatch(case, (*by_tag.hits, hit))
        return by_tag


def _visible(case: AnyCase | None, company_id: int) -> bool:
    # A deleted case is hidden: mail threaded onto it would vanish from view, so a reply to
    # it opens a new case instead.
    return case is not None and case.company_id == company_id and case.deleted_at is None


def _channel_domain(case: Case) -> str:
    """The domain the case's channel receives mail at: the agents' own domain."""
    channel = case.channel
    return domain_of(channel.address) if channel is not None else ""
