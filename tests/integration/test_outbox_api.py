"""The outbox through the REST API and the CLI: send from a case, list, retry, cancel,
suspend; the delivery status on the case's email history."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import pytest

from casemail.accounts import service as accounts
from casemail.accounts.schemas import AccountCreate
from casemail.outbound.sender import send_due
from tests.apisupport import Api
from tests.clisupport import Cli
from tests.mailservers.pki import TestPKI
from tests.mailservers.smtppeer import REFUSED_DOMAIN, SmtpPeer
from tests.support import sample_message

PASSWORD = "outbox-api-canary-secret"


def global_account(api: Api, peer: SmtpPeer) -> int:
    peer.add_login("office@example.com", PASSWORD)
    doc: dict[str, Any] = {
        "role": "global",
        "is_default": True,
        "name": "Office",
        "email": "office@example.com",
        "outgoing": {
            "host": peer.host,
            "port": peer.port,
            "security": "starttls",
            "same_credentials": False,
            "password": PASSWORD,
        },
    }
    with api.db.write() as session:
        account, _ = accounts.create_account(
            session, AccountCreate.model_validate(doc), keys=api.context.keys, allow_private=True
        )
        return account.id


def deliver_now(api: Api) -> int:
    ctx = api.context
    return asyncio.run(send_due(ctx.db, ctx.settings, ctx.keys))


@pytest.fixture
def peer(api: Api, mail_pki: TestPKI, smtp_peer_factory: Callable[..., SmtpPeer]) -> SmtpPeer:
    api.context.settings.tls_ca_file = mail_pki.ca_file
    running = smtp_peer_factory("starttls")
    global_account(api, running)
    return running


def test_send_from_a_case_and_see_it_on_the_history(api: Api, peer: SmtpPeer) -> None:
    case_id = api.deliver(api.channel(), sample_message()).case_id
    body = {
        "to": ["alice@customer.example"],
        "text": "Fixed.",
        "attachments": [
            {"filename": "a.txt", "content_type": "text/plain", "content_base64": "aGk="}
        ],
    }
    queued = api.post(f"/api/v1/cases/{case_id}/messages", json=body)
    assert queued.status_code == 201, queued.text
    assert queued.json()["state"] == "ready"
    assert deliver_now(api) == 1

    history = api.get(f"/api/v1/cases/{case_id}/messages").json()
    assert [m["direction"] for m in history] == ["inbound", "outbound"]
    assert history[1]["delivery_state"] == "sent"
    assert history[1]["outbox_id"] == queued.json()["id"]
    listed = api.get("/api/v1/outbox", params={"state": "sent"}).json()
    assert [e["id"] for e in listed] == [queued.json()["id"]]
    assert PASSWORD not in str(listed)
    assert len(peer.received) == 1


def test_a_refused_message_shows_its_error_and_can_be_retried_or_cancelled(
    api: Api, peer: SmtpPeer
) -> None:
    case_id = api.deliver(api.channel(), sample_message()).case_id
    body = {"to": [f"gone@{REFUSED_DOMAIN}"], "text": "Hello"}
    outbox_id = api.post(f"/api/v1/cases/{case_id}/messages", json=body).json()["id"]
    deliver_now(api)

    history = api.get(f"/api/v1/cases/{case_id}/messages").json()
    assert history[1]["delivery_state"] == "error"
    assert "User unknown" in history[1]["delivery_error"]
    retried = api.post(f"/api/v1/outbox/{outbox_id}/retry")
    assert retried.json()["state"] == "ready"
    reset = api.post(f"/api/v1/outbox/{outbox_id}/reset")
    assert reset.status_code == 409
    assert "not sending" in reset.json()["detail"]
    assert api.post(f"/api/v1/outbox/{outbox_id}/cancel").json()["state"] == "cancelled"
    assert api.post("/api/v1/outbox/999/cancel").status_code == 404


def test_bad_send_requests_are_clear_422s(api: Api, peer: SmtpPeer) -> None:
    case_id = api.deliver(api.channel(), sample_message()).case_id
    url = f"/api/v1/cases/{case_id}/messages"
    no_body = api.post(url, json={"to": ["a@b.example"]})
    assert no_body.status_code == 422
    assert "text or an HTML body" in no_body.json()["detail"]
    bad = {
        "to": ["a@b.example"],
        "text": "x",
        "attachments": [{"filename": "x", "content_base64": "***"}],
    }
    assert "not base64" in api.post(url, json=bad).json()["detail"]
    assert (
        api.post(
            "/api/v1/cases/999/messages", json={"to": ["a@b.example"], "text": "x"}
        ).status_code
        == 404
    )


def test_suspend_holds_mail_until_resumed(api: Api, peer: SmtpPeer) -> None:
    case_id = api.deliver(api.channel(), sample_message()).case_id
    assert api.post("/api/v1/outbox/suspend").status_code == 204
    api.post(f"/api/v1/cases/{case_id}/messages", json={"to": ["a@b.example"], "text": "x"})
    assert deliver_now(api) == 0
    assert api.post("/api/v1/outbox/resume").status_code == 204
    assert deliver_now(api) == 1
    assert api.post("/api/v1/outbox/suspend", json={"account_id": 999}).status_code == 404


def test_cli_send_list_and_retry(api: Api, peer: SmtpPeer, cli: Cli, tmp_path: Any) -> None:
    case_id = api.deliver(api.channel(), sample_message()).case_id
    attachment = tmp_path / "notes.txt"
    attachment.write_text("notes")
    out = cli.ok(
        "send",
        str(case_id),
        "--to",
        "alice@customer.example",
        "--text",
        "Hi",
        "--attach",
        str(attachment),
    )
    assert out.startswith("queued as outbox #1")
    [listed] = cli.json("outbox", "list")
    assert listed["state"] == "ready"
    assert "error" in cli.fails("outbox", "reset", "1")
    assert cli.json("outbox", "cancel", "1")["state"] == "cancelled"
    assert api.get("/api/v1/outbox").json()[0]["state"] == "cancelled"
    assert cli.ok("outbox", "suspend") == "all sending: suspended\n"
    assert cli.ok("outbox", "resume") == "all sending: resumed\n"
    assert "not a valid address" in cli.fails("send", str(case_id), "--to", "nope", "--text", "x")
