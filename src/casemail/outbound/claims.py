"""The outbox as a queue: senders claim due entries, and record what became of them.

A claim is ``state = 'sending'`` with ``claimed_until``; the claim time is also the fencing
token: a sender records its result only where the entry still carries its own claim, so a
sender that was presumed dead and comes back cannot overwrite a newer attempt. An entry
whose claim expired (its sender died mid-send) is due again; if it was on its way to the
server then (``transmitting_since``), it is marked ``maybe_duplicate``: the server may have
taken it before the sender died. It is sent again with the same
Message-ID, so the recipient's mail client shows one message.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import ColumnElement, and_, case, or_, select, update
from sqlalchemy.orm import Session

from casemail.db.models import Account, Installation, OutboxEntry
from casemail.db.types import utcnow

CLAIM_LIMIT = 100


def _due(now: datetime) -> ColumnElement[bool]:
    return or_(
        and_(OutboxEntry.state == "ready", OutboxEntry.next_attempt_at <= now),
        and_(OutboxEntry.state == "sending", OutboxEntry.claimed_until < now),
    )


def claim_due(
    session: Session, *, now: datetime, claim: timedelta, limit: int = CLAIM_LIMIT
) -> list[tuple[int, datetime]]:
    """Claim up to ``limit`` due entries of accounts that may send; returns (id, claim)."""
    if session.scalar(select(Installation.outbox_suspended).where(Installation.id == 1)):
        return []
    suspended = select(Account.id).where(Account.sending_suspended.is_(True))
    candidates = (
        select(OutboxEntry.id)
        .where(_due(now), OutboxEntry.account_id.is_not(None))
        .where(OutboxEntry.account_id.not_in(suspended))
        .order_by(OutboxEntry.id)
        .limit(limit)
        # PostgreSQL: rows another sender is claiming are skipped, not waited for, so senders
        # on many hosts take disjoint sets at once; the locks last until this commit.
        .with_for_update(skip_locked=True, of=OutboxEntry)
    )
    ids = list(session.scalars(candidates))
    if not ids:
        return []
    until = now + claim
    claimed = session.execute(
        update(OutboxEntry)
        # The condition again: another sender may have claimed some of these meanwhile.
        .where(OutboxEntry.id.in_(ids), _due(now))
        .values(
            maybe_duplicate=case(
                (OutboxEntry.transmitting_since.is_not(None), True),
                else_=OutboxEntry.maybe_duplicate,
            ),
            transmitting_since=None,
            state="sending",
            claimed_until=until,
            attempts=OutboxEntry.attempts + 1,
            updated_at=now,
        )
        .returning(OutboxEntry.id)
    )
    return [(row_id, until) for (row_id,) in claimed]


def mine(entry: OutboxEntry, claim: datetime) -> bool:
    """The entry still carries this sender's claim (the fencing check)."""
    return entry.state == "sending" and entry.claimed_until == claim


def start_transmitting(session: Session, outbox_id: int, claim: datetime) -> bool:
    """Mark the entry as on its way to the server; False when the claim was lost."""
    marked = session.execute(
        update(OutboxEntry)
        .where(
            OutboxEntry.id == outbox_id,
            OutboxEntry.state == "sending",
            OutboxEntry.claimed_until == claim,
        )
        .values(transmitting_since=utcnow())
    )
    return bool(marked.rowcount)  # type: ignore[attr-defined]
