"""Rule: a sender over the channel's rate limit (more than N messages in M minutes).

A mail loop with a system we do not recognise, or a script gone wrong, must not open
thousands of cases. Counted over the messages the channel accepted from the sender in the
window (read once per batch), plus those accepted earlier in the same batch.

Only fresh mail counts and is limited: a message dated before the window (an initial import
of an old mailbox, a backlog after an outage) is history, not a flood.
"""

from __future__ import annotations

from collections import Counter
from datetime import datetime, timedelta

from sqlalchemy import func, or_, select
from sqlalchemy.orm import Session

from casemail.channels.rules import RateLimit
from casemail.db.models import Message
from casemail.db.types import utcnow
from casemail.ingest.types import RuleHit

KEYS_PER_QUERY = 250


class SenderCounts:
    def __init__(self, counts: Counter[tuple[int, str]], now: datetime) -> None:
        self._counts = counts
        self._now = now  # one clock reading per batch: its messages are decided together

    @classmethod
    def load(cls, session: Session, wanted: dict[int, tuple[RateLimit, set[str]]]) -> SenderCounts:
        """``wanted``: per channel id, its limit and the sender keys of the batch."""
        counts: Counter[tuple[int, str]] = Counter()
        now = utcnow()
        for channel_id, (limit, senders) in wanted.items():
            if limit.messages == 0 or not senders:
                continue
            since = now - timedelta(minutes=limit.minutes)
            keys = sorted(senders)
            for start in range(0, len(keys), KEYS_PER_QUERY):
                query = (
                    select(Message.sender_key, func.count())
                    .where(
                        Message.sender_key.in_(keys[start : start + KEYS_PER_QUERY]),
                        Message.created_at >= since,
                        or_(Message.sent_at.is_(None), Message.sent_at >= since),
                        Message.channel_id == channel_id,
                        Message.direction == "inbound",
                    )
                    .group_by(Message.sender_key)
                )
                counts.update({(channel_id, k): n for k, n in session.execute(query) if k})
        return cls(counts, now)

    def over_limit(
        self, channel_id: int, sender: str, sent_at: datetime | None, limit: RateLimit
    ) -> RuleHit | None:
        if limit.messages == 0 or self._counts[(channel_id, sender)] < limit.messages:
            return None
        if sent_at is not None and sent_at < self._now - timedelta(minutes=limit.minutes):
            return None
        detail = f"{sender} sent more than {limit.messages} messages in {limit.minutes} minutes"
        return RuleHit("rate-limit", detail)

    def accepted(
        self, channel_id: int, sender: str, sent_at: datetime | None, limit: RateLimit
    ) -> None:
        if sent_at is None or sent_at >= self._now - timedelta(minutes=limit.minutes):
            self._counts[(channel_id, sender)] += 1
