"""Stage: carry out each message's route: open a case, append, quarantine, discard or
reject. The writes of the cases and messages are batched in ``write.py``; quarantine,
discard and reject are rare and written here, row by row.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

from sqlalchemy.orm import Session

from casemail.channels.addresses import domain_of
from casemail.channels.rules import ChannelRules
from casemail.db.models import Case, Channel, InboundReceipt
from casemail.db.types import utcnow
from casemail.identity import Identity
from casemail.ingest import notify
from casemail.ingest.authresults import dkim_pass_domains
from casemail.ingest.classify import Classification
from casemail.ingest.fields import extract_fields, sender_trusted
from casemail.ingest.quarantine import quarantine
from casemail.ingest.route import Route
from casemail.ingest.store import (
    AnyCase,
    BatchContact,
    new_case,
)
from casemail.ingest.thread import ThreadKeys
from casemail.ingest.types import Address, ClaimedReceipt, IngestResult, ParsedMessage, RuleHit

log = logging.getLogger("casemail.ingest")

ARCHIVED = RuleHit("import-archive", "imported as archive: closed, nothing sent")


@dataclass
class Work:
    """One message on its way through the stages of a batch."""

    receipt: ClaimedReceipt
    channel: Channel
    rules: ChannelRules
    parsed: ParsedMessage
    classification: Classification
    keys: ThreadKeys
    contact: BatchContact | None = None
    route: Route | None = None
    case: AnyCase | None = None
    created: bool = False
    hits: tuple[RuleHit, ...] = ()
    result: IngestResult | None = None
    message_pk: int | None = None
    fields: dict[str, str] = field(default_factory=dict)

    @property
    def sender(self) -> Address:
        assert self.parsed.sender is not None  # refused before
        return self.parsed.sender

    @property
    def may_add_contact(self) -> bool:
        """Only ordinary mail creates contacts, and only where the channel lets strangers in
        (or its table opens cases for them anyway)."""
        if self.classification.kind != "normal":
            return False
        return not self.rules.known_senders_only or (
            self.rules.action_for("unknown-sender") == "create-case"
        )


def apply_route(session: Session, item: Work, identity: Identity) -> None:
    assert item.route is not None
    item.hits = item.route.hits
    action = item.route.action
    if action == "create-case" and item.contact is not None:
        _open_case(item)
    elif action == "append" and item.route.case is not None:
        _append(item)
    elif action in ("discard", "reject"):
        _drop(session, item, identity, action)
    else:
        _hold(session, item)


def _open_case(item: Work) -> None:
    assert item.route is not None
    assert item.contact is not None
    archive = item.receipt.archive
    linked = item.route.linked
    item.fields = _structured_fields(item)
    item.case = new_case(
        item.channel,
        item.parsed,
        item.contact,
        status="closed" if archive else "new",
        team_id=item.rules.team_id,
        linked_case_id=linked.id if linked is not None else None,
    )
    item.case.fields = item.fields or None
    item.created = True


def _append(item: Work) -> None:
    assert item.route is not None
    assert item.route.case is not None
    case = item.route.case
    item.case = case
    item.fields = _structured_fields(item)
    if item.fields and isinstance(case, Case):
        case.fields = {**(case.fields or {}), **item.fields}
    # Only a person's reply reopens a closed case: an out-of-office answer to the closing
    # mail must not (RFC 3834 section 1: automatic answers are not conversation).
    normal = item.classification.kind == "normal"
    if case.status == "closed" and normal and not item.receipt.archive:
        case.status = "open"
        item.hits += (RuleHit("reopened", "a reply reopened the closed case"),)


def _structured_fields(item: Work) -> dict[str, str]:
    names = item.rules.structured_fields
    if not names:
        return {}
    found = extract_fields(
        names, header_fields=item.parsed.header_fields, text_body=item.parsed.text_body
    )
    if not found:
        return {}
    sender = item.sender.email
    trusted = sender_trusted(sender, item.rules.trusted_senders)
    if trusted and item.rules.require_dkim:
        passed = dkim_pass_domains(item.parsed.auth_results, item.rules.trusted_authserv_ids)
        trusted = domain_of(sender) in passed
    if not trusted:
        item.hits += (RuleHit("fields-untrusted", f"fields from {sender} ignored: not trusted"),)
        return {}
    item.hits += (RuleHit("structured-fields", ", ".join(sorted(found))),)
    return found


# Situations in which the sender is not told, even when the channel copies senders: our own
# mail coming back, and a sender over the rate limit (a flood would get a flood back).
PERSONLESS = frozenset({"loop", "rate-limited"})


def _hold(session: Session, item: Work) -> None:
    assert item.route is not None
    held = session.get_one(InboundReceipt, item.receipt.id)
    held.rule_hits = [h.as_dict() for h in item.hits]
    code = item.route.situation
    reason = _reason(item)
    written_by_a_person = item.classification.kind == "normal" and code not in PERSONLESS
    entry = quarantine(
        session,
        receipt=held,
        channel=item.channel,
        code=code,
        reason=reason,
        person=item.sender.email if written_by_a_person else None,
    )
    item.result = IngestResult(
        "quarantined", item.receipt.id, quarantine_id=entry.id, reason=reason, rule_hits=item.hits
    )


def _drop(session: Session, item: Work, identity: Identity, action: str) -> None:
    held = session.get_one(InboundReceipt, item.receipt.id)
    state = "discarded" if action == "discard" else "rejected"
    reason = _reason(item)
    if action == "reject":
        item.hits += (_reject_notice(session, item, identity, reason),)
    held.state = state
    held.processed_at = utcnow()
    held.claimed_until = None
    held.last_error = None
    held.rule_hits = [h.as_dict() for h in item.hits]
    log.info("inbound %s: %s (%s)", item.receipt.id, state, reason)
    item.result = IngestResult(
        state,  # type: ignore[arg-type]
        item.receipt.id,
        reason=reason,
        rule_hits=item.hits,
    )


def _reject_notice(session: Session, item: Work, identity: Identity, reason: str) -> RuleHit:
    # Never answer automatic mail, loops or floods (RFC 3834 section 2).
    assert item.route is not None
    if item.classification.kind != "normal" or item.route.situation == "rate-limited":
        return RuleHit("reject-silent", "automatic mail or a flood: the sender is not told")
    notify.reject(
        session,
        identity=identity,
        channel=item.channel,
        sender=item.sender,
        subject=item.parsed.subject,
        in_reply_to=item.parsed.message_id,
        reason=reason,
    )
    return RuleHit("reject-notice", f"rejection notice queued to {item.sender.email}")


_SITUATION_WORDS = {
    "auto-reply-no-case": "An automatic reply that belongs to no case",
    "bulk-no-case": "Bulk or mailing-list mail that belongs to no case",
    "bounce-no-case": "A bounce about no message casemail sent",
    "loop": "casemail's own automatic mail came back",
    "rate-limited": "Too many messages from one sender",
    "unknown-sender": "The sender is not a known contact of this channel",
}


def _reason(item: Work) -> str:
    """Why the message made no case, in plain words, with the rule that said so."""
    assert item.route is not None
    situation = item.route.situation
    wanted = {"rate-limited": "rate-limit", "unknown-sender": "unknown-sender"}.get(situation)
    hits = [h for h in item.hits if h.rule == wanted] or list(item.classification.hits)
    hits = hits or [h for h in item.hits if h.rule != "decision"]
    words = _SITUATION_WORDS.get(situation, situation)
    return f"{words}: {hits[0].detail}" if hits else words
