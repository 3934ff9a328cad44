"""A second company, "Globex", set up through the API by its own admin: the other side of
every company-isolation test (tests/integration/test_companies.py, test_web.py)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import httpx
import pytest

from casemail.users.companies import add_company
from tests.apisupport import Api, admin_token
from tests.integration.test_api_accounts import sketch
from tests.support import sample_message


@dataclass
class Globex:
    auth: dict[str, str]
    ids: dict[str, int]

    def get(self, api: Api, path: str) -> httpx.Response:
        response: httpx.Response = api.client.get(path, headers=self.auth)
        return response


def created(response: httpx.Response) -> dict[str, Any]:
    assert response.status_code in (200, 201, 202), response.text
    body: dict[str, Any] = response.json()
    return body


@pytest.fixture
def globex(api: Api) -> Globex:
    with api.db.write() as session:
        company_id = add_company(session, "Globex").id
        token = admin_token(session, company_id=company_id, email="boss@globex.example")
    auth = {"Authorization": f"Bearer {token}"}

    def post(path: str, body: dict[str, Any]) -> dict[str, Any]:
        return created(api.client.post(path, headers=auth, json=body))

    team = post("/api/v1/teams", {"name": "Globex support", "members": ["boss@globex.example"]})
    user = post("/api/v1/users", {"name": "Globex agent", "email": "agent@globex.example"})
    document = sketch(team="Globex support", name="Globex desk", email="desk@globex.example")
    # Address literals: a host name would be looked up in DNS, off this machine.
    document["incoming"]["host"] = document["outgoing"]["host"] = "127.0.0.1"
    account = post("/api/v1/accounts", document)
    channel = post("/api/v1/channels", {"address": "help@globex.example", "name": "Globex help"})
    api.deliver(
        channel["id"], sample_message(subject="globex secret case", sender="c@globex.example")
    )
    api.deliver(channel["id"], b"")  # an empty message: quarantined
    attached = sample_message(subject="globex file", sender="c@globex.example")
    attached.add_attachment(b"globex", maintype="application", subtype="pdf", filename="g.pdf")
    with_file = api.deliver(channel["id"], attached)
    listed = created(api.client.get("/api/v1/cases", headers=auth))
    case_id = next(c["id"] for c in listed if c["subject"] == "globex secret case")  # type: ignore[index]
    files = created(api.client.get(f"/api/v1/cases/{with_file.case_id}/messages", headers=auth))
    sent = post(
        f"/api/v1/cases/{case_id}/messages",
        {"to": ["c@globex.example"], "text": "globex reply", "account_id": account["id"]},
    )
    client = post(
        "/api/v1/oauth/clients",
        {"name": "Globex app", "provider": "google", "client_id": "globex-app"},
    )
    hook = post(
        "/api/v1/webhooks", {"url": "http://127.0.0.1:9/globex", "events": ["case.created"]}
    )
    pinged = post(f"/api/v1/webhooks/{hook['id']}/ping", {})
    tokens = created(api.client.get("/api/v1/tokens", headers=auth))
    held = created(api.client.get("/api/v1/quarantine", headers=auth))
    ids = {
        "case_id": case_id,
        "account_id": account["id"],
        "channel_id": channel["id"],
        "outbox_id": sent["id"],
        "user_id": user["id"],
        "team_id": team["id"],
        "client_id": client["id"],
        "token_id": tokens[0]["id"],  # type: ignore[index]
        "entry_id": held[0]["id"],  # type: ignore[index]
        "webhook_id": hook["id"],
        "delivery_id": pinged["id"],
        "attachment_id": files[0]["attachments"][0]["id"],  # type: ignore[index]
    }
    return Globex(auth, ids)
