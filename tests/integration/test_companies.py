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
from typing import Any

from tests.apisupport import Api, api_operations, user_token
from tests.companysupport import Globex, created
from tests.integration.test_api_accounts import sketch
from tests.support import sample_message

GLOBEX_MARK = "globex"  # in every name, address and subject of Globex's data


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
    assert sorted(c["subject"] for c in cases) == ["globex file", "globex secret case"]
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
    shared = created(
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
