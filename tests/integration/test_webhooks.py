"""Webhooks through the API and the delivery job, on both databases, against a real HTTP
receiver on 127.0.0.1: events, signatures, retries with backoff, the delivery log."""

from __future__ import annotations

import hashlib
import hmac
import json
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from sqlalchemy import update

from casemail.db.models import Account, WebhookDelivery
from casemail.db.types import utcnow
from casemail.mailboxes.runner import record_failure
from casemail.webhooks.delivery import MAX_ATTEMPTS, deliver_due
from casemail.webhooks.service import WebhookError, check_url
from tests.apisupport import Api
from tests.support import sample_message


@dataclass
class Received:
    headers: dict[str, str]
    body: bytes

    @property
    def json(self) -> dict[str, Any]:
        data: dict[str, Any] = json.loads(self.body)
        return data


@dataclass
class Receiver:
    """An HTTP server that records every POST and answers with the scripted statuses
    (then 204)."""

    port: int = 0
    received: list[Received] = field(default_factory=list)
    statuses: list[int] = field(default_factory=list)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hook"


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    state = Receiver()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers["Content-Length"]))
            state.received.append(Received(dict(self.headers.items()), body))
            self.send_response(state.statuses.pop(0) if state.statuses else 204)
            self.end_headers()

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    state.port = int(server.server_address[1])
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    yield state
    server.shutdown()
    thread.join(timeout=5)


def _deliver(api: Api) -> int:
    return deliver_due(api.db, api.context.keys, allow_private=True)


def _verified(secret: str, got: Received) -> bool:
    """What a receiver does: recompute the signature and compare in constant time."""
    fields = dict(part.split("=", 1) for part in got.headers["X-Casemail-Signature"].split(","))
    mac = hmac.new(secret.encode(), f"{fields['t']}.".encode() + got.body, hashlib.sha256)
    fresh = abs(time.time() - int(fields["t"])) < 300
    return fresh and hmac.compare_digest(mac.hexdigest(), fields["v1"])


def _hook(api: Api, receiver: Receiver, *events: str) -> dict[str, Any]:
    response = api.post("/api/v1/webhooks", json={"url": receiver.url, "events": list(events)})
    assert response.status_code == 201, response.text
    created: dict[str, Any] = response.json()
    return created


def test_new_case_and_message_are_announced_signed(api: Api, receiver: Receiver) -> None:
    hook = _hook(api, receiver, "case.created", "message.received")
    assert hook["secret"].startswith("whsec_")
    assert "secret" not in api.get(f"/api/v1/webhooks/{hook['id']}").json()
    channel_id = api.channel()
    first = api.deliver(channel_id, sample_message(subject="Printer on fire"))
    reply = sample_message(subject="Re: Printer on fire", in_reply_to=None)
    assert _deliver(api) == 2
    api.deliver(channel_id, reply)
    assert _deliver(api) == 2  # the second message opens a case of its own: two events again

    events = [(r.headers["X-Casemail-Event"], r.json) for r in receiver.received]
    assert [name for name, _ in events][:2] == ["case.created", "message.received"]
    created = events[0][1]
    assert created["case"]["id"] == first.case_id
    assert created["case"]["subject"] == "Printer on fire"
    assert created["case"]["contact"]["email"] == "alice@customer.example"
    assert events[1][1]["message"]["id"] == first.message_pk
    assert all(_verified(hook["secret"], got) for got in receiver.received)
    assert not _verified("whsec_wrong", receiver.received[0])
    log = api.get(f"/api/v1/webhooks/{hook['id']}/deliveries").json()
    assert {row["state"] for row in log} == {"delivered"}
    assert len(log) == 4


def test_a_failing_receiver_is_retried_with_backoff_then_given_up(
    api: Api, receiver: Receiver
) -> None:
    hook = _hook(api, receiver, "case.created")
    receiver.statuses = [500]
    api.deliver(api.channel(), sample_message())
    assert _deliver(api) == 1
    (row,) = api.get(f"/api/v1/webhooks/{hook['id']}/deliveries").json()
    assert row["state"] == "pending"
    assert row["attempts"] == 1
    assert row["last_status"] == 500
    assert "answered HTTP 500" in row["last_error"]
    assert _deliver(api) == 0  # not due yet: it waits for its backoff
    _make_due(api)
    assert _deliver(api) == 1
    (row,) = api.get(f"/api/v1/webhooks/{hook['id']}/deliveries").json()
    assert row["state"] == "delivered"
    assert receiver.received[0].headers["X-Casemail-Delivery"] == str(row["id"])
    assert receiver.received[1].headers["X-Casemail-Delivery"] == str(row["id"])

    receiver.statuses = [503] * MAX_ATTEMPTS
    api.deliver(api.channel("other@example.com"), sample_message(subject="Second"))
    for _ in range(MAX_ATTEMPTS):
        _make_due(api)
        _deliver(api)
    failed = api.get(f"/api/v1/webhooks/{hook['id']}/deliveries", params={"state": "failed"})
    (gave_up,) = failed.json()
    assert gave_up["attempts"] == MAX_ATTEMPTS
    assert gave_up["last_error"].startswith(f"gave up after {MAX_ATTEMPTS} attempts")
    again = api.post(f"/api/v1/webhooks/{hook['id']}/deliveries/{gave_up['id']}/retry")
    assert again.json()["state"] == "pending"
    assert _deliver(api) == 1
    assert receiver.received[-1].json["case"]["subject"] == "Second"


def _make_due(api: Api) -> None:
    with api.db.write() as session:
        session.execute(
            update(WebhookDelivery).values(next_attempt_at=utcnow() - timedelta(seconds=1))
        )


def test_unhealthy_account_is_announced_once(api: Api, receiver: Receiver) -> None:
    _hook(api, receiver, "account.unhealthy")
    with api.db.write() as session:
        account = Account(company_id=1, role="global", name="Desk", email="desk@example.com")
        session.add(account)
        session.flush()
        account_id = account.id
    for _ in range(3):
        record_failure(api.db, account_id, ConnectionRefusedError("connection refused"))
    assert _deliver(api) == 1
    (got,) = receiver.received
    assert got.json["account"] == {"id": account_id, "name": "Desk", "email": "desk@example.com"}
    assert got.json["error"] == "connection refused"


def test_ping_update_secret_and_delete(api: Api, receiver: Receiver) -> None:
    hook = _hook(api, receiver, "message.sent")
    ping = api.post(f"/api/v1/webhooks/{hook['id']}/ping")
    assert ping.status_code == 202
    assert _deliver(api) == 1
    assert receiver.received[-1].headers["X-Casemail-Event"] == "ping"
    changed = api.patch(f"/api/v1/webhooks/{hook['id']}", json={"new_secret": True}).json()
    assert changed["secret"] != hook["secret"]
    api.post(f"/api/v1/webhooks/{hook['id']}/ping")
    _deliver(api)
    assert _verified(changed["secret"], receiver.received[-1])
    assert not _verified(hook["secret"], receiver.received[-1])
    off = api.patch(f"/api/v1/webhooks/{hook['id']}", json={"active": False}).json()
    assert off["active"] is False
    assert api.delete(f"/api/v1/webhooks/{hook['id']}").status_code == 204
    assert api.get(f"/api/v1/webhooks/{hook['id']}").status_code == 404


@pytest.mark.parametrize(
    ("url", "words"),
    [
        ("ftp://127.0.0.1/x", "must start with https://"),
        ("https://user:pw@127.0.0.1/x", "no credentials"),
    ],
)
def test_bad_urls_are_refused(api: Api, url: str, words: str) -> None:
    response = api.post("/api/v1/webhooks", json={"url": url, "events": ["case.created"]})
    assert response.status_code == 422
    assert words in response.json()["detail"]
    unknown = api.post("/api/v1/webhooks", json={"url": "https://127.0.0.1/x", "events": ["x"]})
    assert unknown.status_code == 422


def test_private_targets_are_refused_unless_allowed() -> None:
    with pytest.raises(WebhookError, match="private, loopback or link-local"):
        check_url("http://127.0.0.1:9/hook", allow_private=False)
    assert check_url(" http://127.0.0.1:9/hook ", allow_private=True) == "http://127.0.0.1:9/hook"
