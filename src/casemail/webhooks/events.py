"""Announce events to a company's webhooks: delivery rows written in the caller's
transaction, so an event exists exactly when the change it reports was committed."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

from sqlalchemy import insert, select
from sqlalchemy.orm import Session

from casemail.db.models import Webhook, WebhookDelivery
from casemail.db.types import utcnow

EventName = Literal[
    "case.created", "message.received", "message.sent", "message.failed", "account.unhealthy"
]  # fmt: skip
EVENTS: tuple[EventName, ...] = (
    "case.created",
    "message.received",
    "message.sent",
    "message.failed",
    "account.unhealthy",
)


@dataclass(frozen=True)
class Event:
    company_id: int
    name: EventName
    data: dict[str, Any]


Hook = tuple[int, int, list[str]]  # webhook id, company id, events it wants


def subscribed(session: Session, companies: set[int]) -> list[Hook]:
    """The active webhooks of these companies: a caller with many events (a batch of
    mail) asks first and builds the events only when someone listens."""
    query = select(Webhook.id, Webhook.company_id, Webhook.events).where(
        Webhook.company_id.in_(companies), Webhook.active.is_(True)
    )
    return [(int(i), int(c), list(e or [])) for i, c, e in session.execute(query)]


def emit(session: Session, events: Sequence[Event], hooks: list[Hook] | None = None) -> int:
    """Queue each event for every active webhook of its company that wants it; returns how
    many deliveries were queued. One query for the webhooks (none when ``hooks`` is
    given), one insert, per call."""
    if not events:
        return 0
    if hooks is None:
        hooks = subscribed(session, {event.company_id for event in events})
    if not hooks:
        return 0
    now = utcnow()
    rows = [
        {
            "webhook_id": hook_id,
            "event": event.name,
            "payload": envelope(event, now.isoformat()),
            "state": "pending",
            "attempts": 0,
            "next_attempt_at": now,
            "created_at": now,
        }
        for event in events
        for hook_id, company_id, wanted in hooks
        if company_id == event.company_id and event.name in wanted
    ]
    if rows:
        session.execute(insert(WebhookDelivery.__table__), rows)  # type: ignore[arg-type]
    return len(rows)


def envelope(event: Event, at: str) -> dict[str, Any]:
    return {"event": event.name, "occurred_at": at, "company_id": event.company_id, **event.data}
