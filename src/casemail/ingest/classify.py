"""Stage: what kind of mail is this? Ordinary, an auto-reply, bulk, a bounce, or a loop.

Each rule is a predicate over the parsed message that returns a ``RuleHit`` (why it fired)
or None; the first kind whose rule fires wins, in the order loop, bounce, auto-reply,
bulk. The decision table (``route.py``) decides what each kind leads to; nothing here
writes anything.
"""

from __future__ import annotations

from collections.abc import Callable, Collection
from dataclasses import dataclass
from typing import Literal

from casemail.channels.addresses import base_address
from casemail.identity import LOOP_HEADER, Identity
from casemail.ingest.dsn import BounceReport, looks_like_bounce, read_bounce
from casemail.ingest.types import ParsedMessage, RuleHit

Kind = Literal["normal", "auto-reply", "bulk", "bounce", "loop"]
Rule = Callable[[ParsedMessage], RuleHit | None]


@dataclass(frozen=True)
class Classification:
    kind: Kind
    hits: tuple[RuleHit, ...] = ()
    bounce: BounceReport | None = None


def _field(parsed: ParsedMessage, name: str) -> str:
    return parsed.header_fields.get(name, "").strip().lower()


def auto_submitted(parsed: ParsedMessage) -> RuleHit | None:
    # RFC 3834 section 5.1: any value but "no" marks automatic mail.
    value = _field(parsed, "auto-submitted")
    if value and value.split(";")[0].strip() != "no":
        return RuleHit("auto-submitted", f"Auto-Submitted: {value}")
    return None


def vendor_auto_reply(parsed: ParsedMessage) -> RuleHit | None:
    for name in ("x-autoreply", "x-autorespond"):
        if _field(parsed, name):
            return RuleHit("x-autoreply", f"{name}: {_field(parsed, name)}")
    # Exchange sets this on its own automatic mail (MS-OXCMAIL 2.2.3.2.14); "OOF" and
    # "AutoReply" among its values mark out-of-office and other automatic answers.
    suppress = _field(parsed, "x-auto-response-suppress")
    if suppress and suppress not in ("none", "dr", "rn", "nrn"):
        return RuleHit("x-auto-response-suppress", f"X-Auto-Response-Suppress: {suppress}")
    return None


def bulk_precedence(parsed: ParsedMessage) -> RuleHit | None:
    # Not standardised (RFC 3834 section 2 discusses it); bulk, junk and list are in use.
    value = _field(parsed, "precedence")
    if value in ("bulk", "junk", "list"):
        return RuleHit("precedence", f"Precedence: {value}")
    return None


def list_headers(parsed: ParsedMessage) -> RuleHit | None:
    # RFC 2919 List-Id and RFC 2369 List-* fields: mail from a list or newsletter.
    for name in ("list-id", "list-unsubscribe", "list-post"):
        if _field(parsed, name):
            return RuleHit("list-header", f"{name}: {_field(parsed, name)[:200]}")
    return None


AUTO_REPLY_RULES: tuple[Rule, ...] = (auto_submitted, vendor_auto_reply)
BULK_RULES: tuple[Rule, ...] = (bulk_precedence, list_headers)


def loop_rule(
    parsed: ParsedMessage, identity: Identity, own_addresses: Collection[str]
) -> RuleHit | None:
    """Our own automatic mail coming back: our loop header, or sent from our own address."""
    if _field(parsed, LOOP_HEADER.lower()) == identity.instance_id.lower():
        return RuleHit("loop-header", f"{LOOP_HEADER} of this installation")
    sender = parsed.sender.email.lower() if parsed.sender else ""
    if sender and base_address(sender) in own_addresses:
        return RuleHit("loop-own-address", f"sent from our own address {sender}")
    return None


def bounce_rule(parsed: ParsedMessage, raw: bytes) -> BounceReport | None:
    sender = parsed.sender.email if parsed.sender else None
    if not looks_like_bounce(
        content_type=parsed.content_type,
        header_fields=parsed.header_fields,
        sender=sender,
        subject=parsed.subject,
    ):
        return None
    return read_bounce(raw)


def classify(
    parsed: ParsedMessage, raw: bytes, *, identity: Identity, own_addresses: Collection[str]
) -> Classification:
    loop = loop_rule(parsed, identity, own_addresses)
    if loop is not None:
        return Classification("loop", (loop,))
    report = bounce_rule(parsed, raw)
    if report is not None:
        delayed = any(r.action == "delayed" for r in report.recipients)
        rule = "bounce" if report.failed else ("dsn-delay" if delayed else "dsn")
        hit = RuleHit(rule, report.reason())
        return Classification("bounce", (hit,), report)
    auto = _fired(AUTO_REPLY_RULES, parsed)
    if auto:
        return Classification("auto-reply", auto)
    bulk = _fired(BULK_RULES, parsed)
    return Classification("bulk", bulk) if bulk else Classification("normal")


def _fired(rules: tuple[Rule, ...], parsed: ParsedMessage) -> tuple[RuleHit, ...]:
    return tuple(hit for hit in (rule(parsed) for rule in rules) if hit is not None)
