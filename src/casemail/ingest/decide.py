"""Decide and store claimed receipts: many messages with a handful of statements.

The stages, in order, each in its own module: parse (``parse.py``), classify
(``classify.py``), thread (``thread.py``), the rate limit (``ratelimit.py``), route (the
decision table, ``route.py``), store (``store.py``, ``outcomes.py``), notify
(``notify.py``). ``decide_batch`` reads everything a batch needs at once (receipts, raw
bytes, channels, the cases its messages refer to, its senders' contacts and counts),
decides the messages in order (so a reply later in the batch threads onto a case opened
earlier in it), and writes each table with batched statements. A single message is a batch
of one: the SMTP listener and a mailbox sync run the same code.

The caller owns the transaction; if anything raises, nothing of the batch is kept, and the
caller retries the messages one by one to find the one that fails.
"""

from __future__ import annotations

import logging

from sqlalchemy import select
from sqlalchemy.orm import Session

from casemail.channels.rules import RateLimit, load_rules
from casemail.db.blobs import get_blobs
from casemail.db.models import Account, Case, Channel, InboundReceipt
from casemail.identity import Identity, load_identity
from casemail.ingest.classify import classify
from casemail.ingest.outcomes import Work, apply_route
from casemail.ingest.parse import parse_message
from casemail.ingest.quarantine import quarantine
from casemail.ingest.ratelimit import SenderCounts
from casemail.ingest.route import Route, route
from casemail.ingest.store import ContactBook, contact_key, sender_key
from casemail.ingest.thread import ThreadKeys, ThreadLookups
from casemail.ingest.types import ClaimedReceipt, IngestResult, ParsedMessage, RuleHit
from casemail.ingest.write import write_batch

log = logging.getLogger("casemail.ingest")

NO_SENDER = "The message has no usable From address, so no contact can own a case."


Preloaded = dict[int, tuple[ClaimedReceipt, bytes]]


def decide_batch(
    session: Session, inbound_ids: list[int], preloaded: Preloaded | None = None
) -> dict[int, IngestResult]:
    """``preloaded``: receipts the caller stored in this process, with their raw bytes, so
    they are not read back from the database."""
    receipts, raws = _claimed(session, inbound_ids, preloaded or {})
    channel_ids = {r.channel_id for r in receipts}
    channels = {
        c.id: c for c in session.scalars(select(Channel).where(Channel.id.in_(channel_ids)))
    }
    identity = load_identity(session)
    own = _own_addresses(session, {c.company_id for c in channels.values()})
    results: dict[int, IngestResult] = {}
    work: list[Work] = []
    for receipt in receipts:
        item = _prepare(
            session, receipt, channels[receipt.channel_id], raws, results, identity, own
        )
        if item is not None:
            work.append(item)
    if work:
        _decide(session, work, identity)
        results.update(write_batch(session, work, identity))
    return results


def _claimed(
    session: Session, inbound_ids: list[int], preloaded: Preloaded
) -> tuple[list[ClaimedReceipt], dict[str, bytes]]:
    """The receipts in id order, and their raw bytes by digest."""
    found = {i: preloaded[i][0] for i in inbound_ids if i in preloaded}
    raws = {receipt.raw_sha256: preloaded[i][1] for i, receipt in found.items()}
    missing = [i for i in inbound_ids if i not in found]
    if missing:
        r = InboundReceipt
        query = select(r.id, r.channel_id, r.raw_sha256, r.archive, r.envelope_to, r.assign_case_id)
        for i, channel, digest, archive, envelope_to, assign in session.execute(
            query.where(r.id.in_(missing))
        ):
            envelope = tuple(str(a) for a in envelope_to or ())
            found[i] = ClaimedReceipt(i, channel, digest, archive, envelope, assign)
        wanted = [found[i].raw_sha256 for i in missing if i in found]
        raws.update(get_blobs(session, wanted))
    return [found[i] for i in sorted(found)], raws


def _own_addresses(session: Session, company_ids: set[int]) -> frozenset[str]:
    """Addresses mail from which is our own coming back: channels and system senders."""
    channels = select(Channel.address).where(Channel.company_id.in_(company_ids))
    systems = select(Account.email).where(
        Account.company_id.in_(company_ids), Account.role == "system"
    )
    found = list(session.scalars(channels)) + list(session.scalars(systems))
    return frozenset(sender_key(a) for a in found if a)


def _prepare(
    session: Session,
    receipt: ClaimedReceipt,
    channel: Channel,
    raws: dict[str, bytes],
    results: dict[int, IngestResult],
    identity: Identity,
    own: frozenset[str],
) -> Work | None:
    """Parse and classify one message, or quarantine it at once when it cannot be a case."""
    raw = raws.get(receipt.raw_sha256)
    if raw is None:
        raise LookupError(f"blob {receipt.raw_sha256} of inbound {receipt.id} is missing")
    refusal = _refusal(channel, raw)
    parsed = parse_message(raw) if refusal is None else None
    if parsed is not None and parsed.sender is None:
        refusal = ("no-sender", NO_SENDER)
    if refusal is not None or parsed is None:
        code, reason = refusal or ("unparsed", "The message could not be read.")
        held = session.get_one(InboundReceipt, receipt.id)
        entry = quarantine(session, receipt=held, channel=channel, code=code, reason=reason)
        results[receipt.id] = IngestResult(
            "quarantined", receipt.id, quarantine_id=entry.id, reason=reason
        )
        return None
    rules = load_rules(channel.rules)
    classification = classify(parsed, raw, identity=identity, own_addresses=own)
    returned = classification.bounce.original_message_ids if classification.bounce else ()
    keys = ThreadKeys.of(
        channel,
        parsed,
        identity=identity,
        recipients=_recipients(receipt, parsed),
        returned_ids=returned,
        team_id=rules.team_id,
    )
    return Work(receipt, channel, rules, parsed, classification, keys)


def _recipients(receipt: ClaimedReceipt, parsed: ParsedMessage) -> tuple[str, ...]:
    """Where the message was addressed: a reply token may be in any of these."""
    headers = [parsed.header_fields.get(n, "") for n in ("delivered-to", "x-original-to")]
    listed = [a.email for a in parsed.to + parsed.cc]
    return tuple(a for a in (*receipt.envelope_to, *headers, *listed) if a)


def _refusal(channel: Channel, raw: bytes) -> tuple[str, str] | None:
    if not raw.strip():
        return "empty-message", "The message is empty (0 bytes of content)."
    if not channel.active:
        return "channel-inactive", f"Channel {channel.address} is inactive."
    return None


def _decide(session: Session, work: list[Work], identity: Identity) -> None:
    """Thread each message, then route it by the decision table; in order, remembering
    each case, so later messages of the batch see what earlier ones opened."""
    lookups = ThreadLookups.load(session, [w.keys for w in work])
    contacts = ContactBook.load(
        session,
        [(w.channel.company_id, w.sender) for w in work],
        create={contact_key(w.channel.company_id, w.sender) for w in work if w.may_add_contact},
    )
    counts = SenderCounts.load(session, _rate_limits(work))
    for item in work:
        match = lookups.find_case(item.keys)
        contact = contacts.contact_for(item.channel.company_id, item.sender)
        item.contact = contact
        limit = item.rules.rate_limit
        sender = sender_key(item.sender.email)
        rate_hit = None
        if item.classification.kind != "loop":
            rate_hit = counts.over_limit(item.channel.id, sender, item.parsed.date, limit)
        unknown = item.rules.known_senders_only and not contacts.known_before(contact)
        item.route = _assigned(session, item) or route(
            item.classification,
            match,
            item.rules,
            subject=item.parsed.subject,
            rate_hit=rate_hit,
            unknown_sender=unknown,
        )
        apply_route(session, item, identity)
        if item.case is not None:
            counts.accepted(item.channel.id, sender, item.parsed.date, limit)
            lookups.remember(item.parsed.message_id, item.case)
    contacts.write_names(session)


def _assigned(session: Session, item: Work) -> Route | None:
    """An admin assigned the message to a case: it joins that case, whatever the rules say
    (a case deleted or of another company since then leaves the rules to decide)."""
    case_id = item.receipt.assign_case_id
    case = session.get(Case, case_id) if case_id is not None else None
    if case is None or case.deleted_at is not None or case.company_id != item.channel.company_id:
        return None
    hit = RuleHit("assigned-by-admin", f"assigned to case #{case.id} from the quarantine")
    return Route("reply", "append", (hit,), case=case)


def _rate_limits(work: list[Work]) -> dict[int, tuple[RateLimit, set[str]]]:
    wanted: dict[int, tuple[RateLimit, set[str]]] = {}
    for item in work:
        entry = wanted.setdefault(item.channel.id, (item.rules.rate_limit, set()))
        entry[1].add(sender_key(item.sender.email))
    return wanted
