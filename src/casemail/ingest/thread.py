"""Stage: find the case a message belongs to.

Order: In-Reply-To, then References from newest to oldest (RFC 5322 section 3.6.4), against
every Message-ID we stored or sent; then the subject tag ``[<prefix> #<id>]``, trusted only
when the sender is from the case contact's domain, so a stranger cannot write into a case
by guessing its number.

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
from casemail.ingest.store import AnyCase, NewCase
from casemail.ingest.types import ParsedMessage, RuleHit

CHUNK = 500  # values per IN (...) list, well inside SQLite's and PostgreSQL's limits
_MAX_CASE_ID = 2**31 - 1


@dataclass(frozen=True)
class ThreadMatch:
    case: AnyCase | None
    hits: tuple[RuleHit, ...]


def referenced_ids(parsed: ParsedMessage) -> list[str]:
    ordered = ([parsed.in_reply_to] if parsed.in_reply_to else []) + list(
        reversed(parsed.references)
    )
    return list(dict.fromkeys(ordered))[:100]


def subject_tag_pattern(prefix: str) -> re.Pattern[str]:
    return re.compile(r"\[\s*" + re.escape(prefix) + r"\s*#\s*(\d{1,12})\s*\]", re.IGNORECASE)


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
    def load(cls, session: Session, batch: list[tuple[Channel, ParsedMessage]]) -> ThreadLookups:
        lookups = cls()
        ids = list(dict.fromkeys(i for _, parsed in batch for i in referenced_ids(parsed)))
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
        for channel, parsed in batch:
            match = _tag(channel, parsed)
            if match is not None and int(match.group(1)) <= _MAX_CASE_ID:
                # Case ids are 32-bit: PostgreSQL refuses a larger one in the lookup
                # ("integer out of range"), which used to fail the whole message.
                case_ids.add(int(match.group(1)))
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
            # A deleted case is hidden: mail threaded onto it would vanish from view, so a
            # reply to it opens a new case instead.
            if case is not None and case.company_id == company_id and case.deleted_at is None:
                return case
        return None

    def _by_subject_tag(self, channel: Channel, parsed: ParsedMessage) -> ThreadMatch:
        match = _tag(channel, parsed)
        if match is None:
            return ThreadMatch(None, ())
        case = self.cases.get(int(match.group(1)))
        tag = match.group(0)
        if case is None or case.company_id != channel.company_id or case.deleted_at is not None:
            return ThreadMatch(None, (RuleHit("subject-tag-unknown", f"{tag}: no such case"),))
        sender_domain = domain_of(parsed.sender.email) if parsed.sender else ""
        contact_domain = domain_of(case.contact.email) if case.contact else ""
        if sender_domain and sender_domain == contact_domain:
            hit = RuleHit("thread-subject-tag", f"{tag} from {sender_domain}")
            return ThreadMatch(case, (hit,))
        detail = f"{tag} ignored: sender domain {sender_domain!r} is not the case contact's"
        return ThreadMatch(None, (RuleHit("subject-tag-untrusted", detail),))

    def find_case(self, channel: Channel, parsed: ParsedMessage) -> ThreadMatch:
        case = self._by_message_ids(channel.company_id, referenced_ids(parsed))
        if case is not None:
            return ThreadMatch(case, (RuleHit("thread-references", "In-Reply-To/References"),))
        return self._by_subject_tag(channel, parsed)
