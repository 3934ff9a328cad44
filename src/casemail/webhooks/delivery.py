"""Send queued webhook deliveries: signed POSTs, retried with backoff, logged.

Signature (the ``X-Casemail-Signature`` header): ``t=<unix time>,v1=<hex HMAC-SHA256 of
"<t>." + body with the webhook's secret>``. The receiver recomputes it, compares in
constant time and refuses old timestamps, so a captured request cannot be replayed later.

Several workers may run this at once: a delivery is claimed (``claimed_until``) in its own
transaction before it is sent; a worker that dies leaves a claim that expires. A receiver
that got a delivery but answered too late may get it again: ``X-Casemail-Delivery`` is the
same on every attempt, for it to drop repeats.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import time
from datetime import datetime, timedelta
from urllib.parse import urlsplit

import httpx
from sqlalchemy import or_, select

from casemail import __version__
from casemail.accounts.hosts import HostNotAllowed, HostNotFound, check_host
from casemail.accounts.secrets import KeyRing
from casemail.db.engine import Database
from casemail.db.models import Webhook, WebhookDelivery
from casemail.db.types import utcnow
from casemail.webhooks.secrets import WEBHOOKS

log = logging.getLogger("casemail.webhooks")

BATCH = 50
CLAIM = timedelta(seconds=120)
TIMEOUT = 10.0
MAX_ATTEMPTS = 8  # 30 s, 2 min, 8 min, 32 min, about 2 h, then every 6 h: about a day in all
MAX_BACKOFF = timedelta(hours=6)


def backoff(attempts: int) -> timedelta:
    return min(timedelta(seconds=30 * 4 ** max(attempts - 1, 0)), MAX_BACKOFF)


def sign(secret: str, timestamp: int, body: bytes) -> str:
    mac = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256)
    return f"t={timestamp},v1={mac.hexdigest()}"


def deliver_due(db: Database, keys: KeyRing, *, allow_private: bool) -> int:
    """Send what is due; returns how many deliveries were attempted."""
    claimed = _claim(db)
    with httpx.Client(timeout=TIMEOUT, follow_redirects=False) as http:
        for delivery_id in claimed:
            _attempt(db, keys, http, delivery_id, allow_private=allow_private)
    return len(claimed)


def _claim(db: Database) -> list[int]:
    now = utcnow()
    with db.write() as session:
        due = list(
            session.scalars(
                select(WebhookDelivery)
                .where(
                    WebhookDelivery.state == "pending",
                    WebhookDelivery.next_attempt_at <= now,
                    or_(
                        WebhookDelivery.claimed_until.is_(None),
                        WebhookDelivery.claimed_until < now,
                    ),
                )
                .order_by(WebhookDelivery.id)
                .limit(BATCH)
                .with_for_update(skip_locked=True)
            )
        )
        for delivery in due:
            delivery.claimed_until = now + CLAIM
        return [d.id for d in due]


def _attempt(
    db: Database, keys: KeyRing, http: httpx.Client, delivery_id: int, *, allow_private: bool
) -> None:
    with db.read() as session:
        delivery = session.get_one(WebhookDelivery, delivery_id)
        hook = session.get_one(Webhook, delivery.webhook_id)
        url, event, payload = hook.url, delivery.event, delivery.payload
        secret = (
            keys.decrypt(hook.id, hook.secrets, table=WEBHOOKS)["secret"] if hook.secrets else ""
        )
    body = json.dumps(payload, separators=(",", ":"), sort_keys=True).encode()
    status: int | None = None
    try:
        _check_target(url, allow_private=allow_private)
        response = http.post(url, content=body, headers=_headers(secret, event, delivery_id, body))
        status = response.status_code
        error = None if 200 <= status < 300 else f"the receiver answered HTTP {status}"
    except (HostNotAllowed, HostNotFound) as exc:
        error = f"refused: {exc}"
    except (httpx.HTTPError, OSError) as exc:
        error = f"could not reach {urlsplit(url).netloc}: {type(exc).__name__}: {exc}"
    _record(db, delivery_id, status, error)


def _headers(secret: str, event: str, delivery_id: int, body: bytes) -> dict[str, str]:
    return {
        "Content-Type": "application/json",
        "User-Agent": f"casemail/{__version__}",
        "X-Casemail-Event": event,
        "X-Casemail-Delivery": str(delivery_id),
        "X-Casemail-Signature": sign(secret, int(time.time()), body),
    }


def _check_target(url: str, *, allow_private: bool) -> None:
    """No webhook may point casemail at its own network (SSRF) unless private hosts are
    allowed. Checked at every attempt: DNS may have changed since the URL was saved."""
    parts = urlsplit(url)
    port = parts.port or (443 if parts.scheme == "https" else 80)
    check_host(parts.hostname or "", port, allow_private=allow_private)


def _record(db: Database, delivery_id: int, status: int | None, error: str | None) -> None:
    now = utcnow()
    with db.write() as session:
        delivery = session.get_one(WebhookDelivery, delivery_id)
        delivery.attempts += 1
        delivery.claimed_until = None
        delivery.last_status = status
        delivery.last_error = error
        if error is None:
            delivery.state = "delivered"
            delivery.delivered_at = now
        elif delivery.attempts >= MAX_ATTEMPTS:
            delivery.state = "failed"
            delivery.last_error = f"gave up after {delivery.attempts} attempts: {error}"
        else:
            delivery.next_attempt_at = now + backoff(delivery.attempts)
    if error is not None:
        log.warning("webhook delivery %s: %s", delivery_id, error)


def retry_now(delivery: WebhookDelivery, now: datetime) -> None:
    """An admin's "retry": a failed or waiting delivery is due again, with fresh attempts."""
    delivery.state = "pending"
    delivery.attempts = 0
    delivery.next_attempt_at = now
    delivery.claimed_until = None
