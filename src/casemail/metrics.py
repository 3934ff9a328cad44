"""``/metrics`` for Prometheus, read from the database at each scrape.

casemail runs as several processes (``serve``, ``worker`` on other hosts); counters kept in
one process's memory would each tell part of the story. The database holds all of it, so
every figure here is a query: counts by state are cheap on the indexed state columns, and
the latency is taken over the most recent receipts only.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime, timedelta

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector
from sqlalchemy import func, or_, select
from sqlalchemy.orm import Session

from casemail.db.engine import Database
from casemail.db.models import Account, InboundReceipt, Message, OutboxEntry, QuarantineEntry
from casemail.db.types import utcnow

LATENCY_SAMPLE = 1000  # receipts: the latency quantiles are over the most recent ones
UNHEALTHY_OAUTH = ("needs-reauthorisation", "client-rejected")


class DatabaseCollector(Collector):
    def __init__(self, db: Database) -> None:
        self._db = db

    def collect(self) -> Iterator[Metric]:
        with self._db.read() as session:
            inbound = dict(
                session.execute(
                    select(InboundReceipt.state, func.count()).group_by(InboundReceipt.state)
                ).all()
            )
            outbox = dict(
                session.execute(
                    select(OutboxEntry.state, func.count()).group_by(OutboxEntry.state)
                ).all()
            )
            ingested = session.scalar(
                select(func.count()).select_from(Message).where(Message.direction == "inbound")
            )
            held = session.scalar(
                select(func.count())
                .select_from(QuarantineEntry)
                .where(QuarantineEntry.state == "held")
            )
            unhealthy = session.scalar(
                select(func.count())
                .select_from(Account)
                .where(
                    Account.deactivated_at.is_(None),
                    or_(Account.sync_state == "error", Account.oauth_state.in_(UNHEALTHY_OAUTH)),
                )
            )
            latencies = _latencies(session)
            stale = _oldest_unprocessed_age(session)
        yield from _inbound(inbound, int(ingested or 0), int(held or 0))
        yield from _outbox(outbox)
        unhealthy_gauge = GaugeMetricFamily(
            "casemail_accounts_unhealthy",
            "Active accounts whose sync fails or whose OAuth2 grant needs a person",
        )
        unhealthy_gauge.add_metric([], int(unhealthy or 0))
        yield unhealthy_gauge
        yield _latency(latencies)
        backlog = GaugeMetricFamily(
            "casemail_inbound_oldest_waiting_seconds",
            "Age of the oldest stored message not yet on a case or in quarantine (0: none)",
        )
        backlog.add_metric([], stale)
        yield backlog


def _inbound(states: dict[str, int], ingested: int, held: int) -> Iterator[Metric]:
    receipts = CounterMetricFamily(
        "casemail_inbound_messages",
        "Messages received (stored raw), by what became of them",
        labels=["state"],
    )
    for state in ("received", "processing", "done", "quarantined", "discarded", "rejected"):
        receipts.add_metric([state], states.get(state, 0))
    yield receipts
    on_cases = CounterMetricFamily(
        "casemail_messages_ingested", "Inbound messages on a case's email history"
    )
    on_cases.add_metric([], ingested)
    yield on_cases
    quarantine = GaugeMetricFamily("casemail_quarantine_held", "Messages held in quarantine")
    quarantine.add_metric([], held)
    yield quarantine


def _outbox(states: dict[str, int]) -> Iterator[Metric]:
    by_state = GaugeMetricFamily(
        "casemail_outbox_messages", "Outbound messages by state", labels=["state"]
    )
    for state in ("ready", "sending", "sent", "error", "cancelled"):
        by_state.add_metric([state], states.get(state, 0))
    yield by_state
    sent = CounterMetricFamily("casemail_messages_sent", "Outbound messages delivered")
    sent.add_metric([], states.get("sent", 0))
    yield sent
    failed = CounterMetricFamily("casemail_messages_failed", "Outbound messages that failed")
    failed.add_metric([], states.get("error", 0))
    yield failed
    depth = GaugeMetricFamily("casemail_outbox_depth", "Messages waiting to be sent")
    depth.add_metric([], states.get("ready", 0) + states.get("sending", 0))
    yield depth


def _latencies(session: Session) -> list[float]:
    """Seconds from storing to deciding, for the most recent processed receipts."""
    rows = session.execute(
        select(InboundReceipt.received_at, InboundReceipt.processed_at)
        .where(InboundReceipt.processed_at.is_not(None))
        .order_by(InboundReceipt.id.desc())
        .limit(LATENCY_SAMPLE)
    ).all()
    return sorted(
        max((done - received).total_seconds(), 0.0)
        for received, done in rows
        if received is not None and done is not None
    )


def _latency(values: list[float]) -> Metric:
    gauge = GaugeMetricFamily(
        "casemail_ingest_latency_seconds",
        f"From storing a message to its case or quarantine, over the last {LATENCY_SAMPLE}",
        labels=["quantile"],
    )
    for quantile in (0.5, 0.9, 0.99):
        value = values[min(int(quantile * len(values)), len(values) - 1)] if values else 0.0
        gauge.add_metric([str(quantile)], value)
    return gauge


def _oldest_unprocessed_age(session: Session) -> float:
    oldest: datetime | None = session.scalar(
        select(func.min(InboundReceipt.received_at)).where(
            InboundReceipt.state.in_(("received", "processing"))
        )
    )
    if oldest is None:
        return 0.0
    return max((utcnow() - oldest) / timedelta(seconds=1), 0.0)
