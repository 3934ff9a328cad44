"""Company isolation and roles through the real app, on both databases.

Two companies: the default one ("Acme", the ``api`` fixture's admin) and "Globex", set up
through the API by its own admin with a team, an account, a channel, a case with mail, a
quarantined message, an outbox entry, an OAuth app and a token. Then Acme's admin tries
every documented /api/v1 operation on Globex's ids (read from the OpenAPI document, so
routes added later are covered) and must get 403 or 404 every time, see nothing of Globex
in any list, and leave Globex's data exactly as it was.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

import httpx
import pytest

from casemail.users.companies import add_company
from tests.apisupport import Api, admin_token, api_operations, user_token
from tests.integration.test_api_accounts import sketch
from tests.support import sample_message

GLOBEX_MARK = "globex"  # in every name, address and subject of Globex's data


@dataclass
class Globex:
    auth: dict[str, str]
    ids: dict[str, int]

    def get(self, api: Api, path: str) -> httpx.Response:
        response: httpx.Response = api.client.get(path, headers=self.auth)
        return response


def _created(response: httpx.Response) -> dict[str, Any]:
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
        return _created(api.client.post(path, headers=auth, json=body))

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
    case_id = _created(api.client.get("/api/v1/cases", headers=auth))[0]["id"]  # type: ignore[index]
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
    tokens = _created(api.client.get("/api/v1/tokens", headers=auth))
    held = _created(api.client.get("/api/v1/quarantine", headers=auth))
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
    }
    return Globex(auth, ids)


def _bodies(globex: Globex) -> dict[tuple[str, str], Any]:
    """Valid bodies, so a refusal comes from the company check, not from validation."""
    ids = globex.ids
    return {
        ("PATCH", "/api/v1/accounts/{account_id}"): {"name": "taken over"},
        ("PATCH", "/api/v1/cases/{case_id}"): {"status": "closed", "assignee_user_id": None},
        ("POST", "/api/v1/accounts/{account_id}/take-over"): {"from_account": ids["account_id"]},
        ("POST", "/api/v1/accounts/{account_id}/test-outgoing"): {"to": "x@acme.example"},
        ("POST", "/api/v1/cases/{case_id}/messages"): {"to": ["x@acme.example"], "text": "hi"},
        ("PUT", "/api/v1/channels/{channel_id}/rules"): {},
        ("PATCH", "/api/v1/channels/{channel_id}"): {"active": False},
        ("PATCH", "/api/v1/oauth/clients/{client_id}"): {"client_id": "stolen"},
        ("POST", "/api/v1/teams/{team_id}/members"): {"user": ids["user_id"]},
        ("PATCH", "/api/v1/users/{user_id}"): {"name": "renamed", "active": False},
        ("POST", "/api/v1/quarantine/{entry_id}/assign"): {"case_id": ids["case_id"]},
        ("PATCH", "/api/v1/webhooks/{webhook_id}"): {"url": "http://127.0.0.1:9/acme"},
    }


def _fill(path: str, ids: dict[str, int]) -> str:
    return re.sub(r"\{([^}]+)\}", lambda m: str(ids[m.group(1)]), path)


def test_every_route_refuses_another_companys_ids(api: Api, globex: Globex) -> None:
    bodies = _bodies(globex)
    tried = 0
    for method, path in api_operations(api):
        if "{" not in path:
            continue
        response = api.client.request(
            method, _fill(path, globex.ids), headers=api.auth, json=bodies.get((method, path))
        )
        where = f"{method} {path}: {response.text[:200]}"
        assert response.status_code in (403, 404), where
        assert GLOBEX_MARK not in response.text.lower(), where
        tried += 1
    assert tried >= 30  # every route with an id in its path


def test_lists_show_nothing_of_another_company(api: Api, globex: Globex) -> None:
    api.deliver(api.channel("help@acme.example"), sample_message(subject="acme case"))
    for method, path in api_operations(api):
        if method != "GET" or "{" in path:
            continue
        response = api.get(path)
        assert response.status_code == 200, f"{path}: {response.text[:200]}"
        assert GLOBEX_MARK not in response.text.lower(), path
    # And the other way round: Globex sees its own data, not Acme's.
    cases = globex.get(api, "/api/v1/cases").json()
    assert [c["subject"] for c in cases] == ["globex secret case"]
    assert "acme" not in globex.get(api, "/api/v1/channels").text


def test_references_to_another_companys_objects_are_refused(api: Api, globex: Globex) -> None:
    ids = globex.ids
    attempts = [
        ("/api/v1/teams", {"name": "Mixed", "members": [ids["user_id"]]}),
        ("/api/v1/users", {"name": "Spy", "email": "spy@acme.example", "teams": [ids["team_id"]]}),
        ("/api/v1/channels", {"address": "x@acme.example", "account_id": ids["account_id"]}),
        ("/api/v1/accounts", sketch(team=ids["team_id"], email="y@acme.example")),
        ("/api/v1/outbox/suspend", {"account_id": ids["account_id"]}),
    ]
    for path, body in attempts:
        response = api.post(path, json=body)
        assert response.status_code in (404, 422), f"{path}: {response.text}"
        assert GLOBEX_MARK not in response.text.lower(), path
    # A user's email is unique across the installation: taken is "exists", not a crash.
    taken = api.post("/api/v1/users", json={"name": "Dup", "email": "agent@globex.example"})
    assert taken.status_code == 409


def test_another_companys_data_is_unchanged_after_the_attempts(api: Api, globex: Globex) -> None:
    before = {path: globex.get(api, path).json() for path in _globex_views(globex)}
    test_every_route_refuses_another_companys_ids(api, globex)
    after = {path: globex.get(api, path).json() for path in _globex_views(globex)}
    assert after == before


def _globex_views(globex: Globex) -> list[str]:
    ids = globex.ids
    return [
        f"/api/v1/cases/{ids['case_id']}",
        f"/api/v1/cases/{ids['case_id']}/messages",
        f"/api/v1/accounts/{ids['account_id']}",
        f"/api/v1/channels/{ids['channel_id']}/rules",
        f"/api/v1/users/{ids['user_id']}",
        f"/api/v1/oauth/clients/{ids['client_id']}",
        "/api/v1/teams",
        "/api/v1/outbox",
        "/api/v1/quarantine",
        f"/api/v1/quarantine/{ids['entry_id']}",
        f"/api/v1/webhooks/{ids['webhook_id']}",
        f"/api/v1/webhooks/{ids['webhook_id']}/deliveries",
    ]


def test_an_agent_reads_and_replies_but_changes_no_settings(api: Api, globex: Globex) -> None:
    with api.db.write() as session:
        token = user_token(session, company_id=1, email="agent@acme.example", role="agent")
    agent = {"Authorization": f"Bearer {token}"}
    channel_id = api.channel("help@acme.example")
    api.deliver(channel_id, sample_message(subject="acme case"))
    for path in ("/api/v1/cases", "/api/v1/users", "/api/v1/teams", "/api/v1/me"):
        assert api.client.get(path, headers=agent).status_code == 200, path
    refused = [
        ("GET", "/api/v1/accounts"),
        ("POST", "/api/v1/accounts"),
        ("GET", "/api/v1/quarantine"),
        ("GET", "/api/v1/inbound"),
        ("GET", "/api/v1/outbox"),
        ("POST", "/api/v1/outbox/suspend"),
        ("POST", "/api/v1/channels"),
        ("GET", "/api/v1/oauth/clients"),
        ("POST", "/api/v1/users"),
        ("POST", "/api/v1/teams"),
        ("DELETE", "/api/v1/cases/1"),
        ("PUT", "/api/v1/channels/1/rules"),
    ]
    for method, path in refused:
        response = api.client.request(method, path, headers=agent, json={})
        assert response.status_code == 403, f"{method} {path}: {response.text}"
    me = api.client.get("/api/v1/me", headers=agent).json()
    assert me["role"] == "agent"
    assert me["email"] == "agent@acme.example"
    assert "password" not in str(me).lower().replace("can_sign_in", "")


def test_installation_wide_settings_belong_to_the_default_company(api: Api, globex: Globex) -> None:
    everything = api.client.post("/api/v1/outbox/suspend", headers=globex.auth, json={})
    assert everything.status_code == 403
    assert "installation" in everything.json()["detail"]
    shared = _created(
        api.post(
            "/api/v1/oauth/clients",
            json={"name": "Shared app", "provider": "microsoft", "client_id": "shared"},
        )
    )
    assert shared["company_id"] is None  # the installation's admin may share an app
    seen = globex.get(api, f"/api/v1/oauth/clients/{shared['id']}")
    assert seen.status_code == 200  # every company may use it …
    changed = api.client.patch(
        f"/api/v1/oauth/clients/{shared['id']}", headers=globex.auth, json={"client_id": "mine"}
    )
    assert changed.status_code == 403  # … but not change it
    own = globex.get(api, f"/api/v1/oauth/clients/{globex.ids['client_id']}").json()
    assert own["company_id"] != 1
