"""Stage: find the case a message belongs to.

Order: In-Reply-To, then References from newest to oldest (RFC 5322 section 3.6.4), against
every Message-ID we stored or sent; then the subject tag ``[<prefix> #<id>]``, trusted only
when the sender is from the case contact's domain, so a stranger cannot write into a case
by guessing its number.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session

from casemail.channels.addresses import domain_of
from casemail.db.models import Case, Channel, Message, OutboxEntry
from casemail.ingest.types import ParsedMessage, RuleHit


@dataclass(frozen=True)
class ThreadMatch:
    case: Case | None
    hits: tuple[RuleHit, ...]


def referenced_ids(parsed: ParsedMessage) -> list[str]:
    ordered = ([parsed.in_reply_to] if parsed.in_reply_to else []) + list(
        reversed(parsed.references)
    )
    return list(dict.fromkeys(ordered))[:100]


def _case_by_message_ids(session: Session, company_id: int, ids: list[str]) -> Case | None:
    if not ids:
        return None
    stored = session.execute(
        select(Message.message_id, Message.case_id).where(Message.message_id.in_(ids))
    ).all()
    sent = session.execute(
        select(OutboxEntry.message_id, OutboxEntry.case_id).where(
            OutboxEntry.message_id.in_(ids), OutboxEntry.case_id.is_not(None)
        )
    ).all()
    case_of = dict([*sent, *stored])
    for mid in ids:
        if mid in case_of:
            case = session.get(Case, case_of[mid])
            if case is not None and case.company_id == company_id:
                return case
    return None


_MAX_CASE_ID = 2**31 - 1


def subject_tag_pattern(prefix: str) -> re.Pattern[str]:
    return re.compile(r"\[\s*" + re.escape(prefix) + r"\s*#\s*(\d{1,12})\s*\]", re.IGNORECASE)


def _case_by_subject_tag(session: Session, channel: Channel, parsed: ParsedMessage) -> ThreadMatch:
    match = subject_tag_pattern(channel.subject_tag_prefix).search(parsed.subject)
    if match is None:
        return ThreadMatch(None, ())
    number = int(match.group(1))
    # Case ids are 32-bit integers: PostgreSQL refuses a larger one in the lookup ("integer
    # out of range"), which failed the whole message there (see tests/integration/test_ingest.py).
    case = session.get(Case, number) if number <= _MAX_CASE_ID else None
    tag = match.group(0)
    if case is None or case.company_id != channel.company_id:
        return ThreadMatch(None, (RuleHit("subject-tag-unknown", f"{tag}: no such case"),))
    sender_domain = domain_of(parsed.sender.email) if parsed.sender else ""
    contact_domain = domain_of(case.contact.email) if case.contact else ""
    if sender_domain and sender_domain == contact_domain:
        return ThreadMatch(case, (RuleHit("thread-subject-tag", f"{tag} from {sender_domain}"),))
    detail = f"{tag} ignored: sender domain {sender_domain!r} is not the case contact's"
    return ThreadMatch(None, (RuleHit("subject-tag-untrusted", detail),))


def find_case(session: Session, channel: Channel, parsed: ParsedMessage) -> ThreadMatch:
    ids = referenced_ids(parsed)
    case = _case_by_message_ids(session, channel.company_id, ids)
    if case is not None:
        return ThreadMatch(case, (RuleHit("thread-references", "In-Reply-To/References"),))
    return _case_by_subject_tag(session, channel, parsed)
