"""/api/v1/accounts, /users and /teams through the real app on both databases."""

from __future__ import annotations

import json
import socket
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from tests.apisupport import Api
from tests.mailservers import Dovecot, MailUser, SmtpPeer
from tests.netsupport import LocalDNS

CANARY = "Pw-canary-0d2f7c"


def sketch(**overrides: Any) -> dict[str, Any]:
    """The document from the issue's interface sketch."""
    doc: dict[str, Any] = {
        "role": "team",
        "team": "Support",
        "name": "Support",
        "email": "support@example.com",
        "auth": "password",
        "incoming": {
            "protocol": "imap",
            "host": "imap.example.com",
            "port": 993,
            "security": "tls",
            "username": "support@example.com",
            "password": CANARY,
            "folders": ["INBOX"],
            "leave_on_server": True,
            "delete_after_days": None,
            "verify_tls": True,
        },
        "outgoing": {
            "host": "smtp.example.com",
            "port": 587,
            "security": "starttls",
            "auth_required": True,
            "same_credentials": True,
            "from_name": "Support Team",
            "reply_to": None,
        },
    }
    doc.update(overrides)
    return doc


@pytest.fixture
def team(api: Api) -> int:
    response = api.post("/api/v1/teams", json={"name": "Support"})
    assert response.status_code == 201, response.text
    return int(response.json()["id"])


@pytest.fixture
def closed_port() -> Iterator[int]:
    """A port nothing listens on (bound, never listening, so nobody else takes it)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        yield int(sock.getsockname()[1])


def test_create_read_list_never_show_the_password(api: Api, team: int) -> None:
    created = api.post("/api/v1/accounts", json=sketch())
    assert created.status_code == 201, created.text
    body = created.json()
    assert body["owner_team_id"] == team
    assert body["incoming"]["has_password"] is True
    assert body["outgoing"]["has_password"] is True  # same credentials as incoming
    assert "password" not in body["incoming"]
    assert body["incoming_active"] is body["outgoing_active"] is True
    assert body["last_test_incoming"] == {"at": None, "ok": None, "message": None}
    fetched = api.get(f"/api/v1/accounts/{body['id']}")
    listed = api.get("/api/v1/accounts")
    for response in (created, fetched, listed):
        assert CANARY not in response.text


@pytest.mark.parametrize(
    ("change", "status", "where"),
    [
        ({"incoming": {"protocol": "smtp", "host": "x.example.com"}}, 422, "protocol"),
        ({"incoming": {"protocol": "imap", "host": "x.example.com", "port": 70000}}, 422, "port"),
        ({"outgoing": {"host": "http://smtp.example.com/"}}, 422, "host"),
        ({"email": "not an address"}, 422, "email"),
        ({"role": "owner"}, 422, "role"),
        ({"team": "Nobody"}, 422, "no team 'Nobody'"),
    ],
)
def test_bad_input_is_refused_clearly_and_nothing_is_saved(
    api: Api, team: int, change: dict[str, Any], status: int, where: str
) -> None:
    response = api.post("/api/v1/accounts", json=sketch(**change))
    assert response.status_code == status
    assert where in response.text
    assert CANARY not in response.text
    assert api.get("/api/v1/accounts").json() == []


def test_initial_import_is_accepted_shown_changed_and_checked(api: Api, team: int) -> None:
    doc = sketch()
    doc["incoming"]["initial_import"] = "archive"
    created = api.post("/api/v1/accounts", json=doc)
    assert created.status_code == 201, created.text
    account_id = created.json()["id"]
    assert created.json()["incoming"]["initial_import"] == "archive"
    assert api.get(f"/api/v1/accounts/{account_id}").json()["incoming"]["initial_import"] == (
        "archive"
    )

    patched = api.patch(
        f"/api/v1/accounts/{account_id}", json={"incoming": {"initial_import": "from-now"}}
    )
    assert patched.status_code == 200, patched.text
    assert patched.json()["incoming"]["initial_import"] == "from_now"

    refused = api.patch(
        f"/api/v1/accounts/{account_id}", json={"incoming": {"initial_import": "yesterday"}}
    )
    assert refused.status_code == 422
    assert refused.json()["field"] == "incoming.initial_import"
    assert "all, archive, from_now" in refused.json()["detail"]
    unchanged = api.get(f"/api/v1/accounts/{account_id}").json()["incoming"]
    assert unchanged["initial_import"] == "from_now"
    default = sketch(team="Support", email="other@example.com")
    assert api.post("/api/v1/accounts", json=default).json()["incoming"]["initial_import"] == "all"


def test_delete_when_deleted_warns_where_it_cannot_act(api: Api, team: int) -> None:
    doc = sketch()
    doc["incoming"]["delete_when_deleted"] = True
    imap = api.post("/api/v1/accounts", json=doc).json()
    assert imap["incoming"]["delete_when_deleted"] is True
    assert any("applies only to POP3" in w for w in imap["warnings"])
    pop3 = api.patch(
        f"/api/v1/accounts/{imap['id']}",
        json={"incoming": {"protocol": "pop3", "leave_on_server": False}},
    ).json()
    assert any(
        "delete_when_deleted applies only with leave_on_server" in w for w in pop3["warnings"]
    )
    kept = api.patch(f"/api/v1/accounts/{imap['id']}", json={"incoming": {"leave_on_server": True}})
    assert not [w for w in kept.json()["warnings"] if "delete_when_deleted" in w]


def test_private_hosts_are_refused_in_production(api: Api, team: int) -> None:
    api.context.settings.allow_private_hosts = False
    doc = sketch()
    doc["incoming"]["host"] = "127.0.0.1"
    response = api.post("/api/v1/accounts", json=doc)
    assert response.status_code == 422
    assert response.json()["field"] == "incoming.host"
    assert "CASEMAIL_ALLOW_PRIVATE_HOSTS" in response.json()["detail"]
    assert api.get("/api/v1/accounts").json() == []


def test_patch_default_deactivate_and_the_inactive_filter(api: Api, team: int) -> None:
    account_id = api.post("/api/v1/accounts", json=sketch()).json()["id"]
    patched = api.patch(
        f"/api/v1/accounts/{account_id}",
        json={"name": "Helpdesk", "incoming": {"leave_on_server": False}},
    )
    assert patched.status_code == 200, patched.text
    assert patched.json()["name"] == "Helpdesk"
    assert any("removed from the server" in w for w in patched.json()["warnings"])
    default = api.post(f"/api/v1/accounts/{account_id}/default")
    assert default.json()["is_default"] is True
    gone = api.post(f"/api/v1/accounts/{account_id}/deactivate")
    assert gone.json()["active"] is False
    assert gone.json()["is_default"] is False
    assert api.get("/api/v1/accounts").json() == []
    everything = api.get("/api/v1/accounts", params={"include_inactive": True}).json()
    assert [a["id"] for a in everything] == [account_id]
    refused = api.patch(f"/api/v1/accounts/{account_id}", json={"name": "again"})
    assert refused.status_code == 409


def test_test_incoming_on_a_closed_port_names_the_port(
    api: Api, team: int, closed_port: int
) -> None:
    doc = sketch()
    doc["incoming"].update(host="127.0.0.1", port=closed_port, connect_timeout=5)
    account_id = api.post("/api/v1/accounts", json=doc).json()["id"]
    result = api.post(f"/api/v1/accounts/{account_id}/test-incoming")
    assert result.status_code == 200, result.text
    outcome = result.json()
    assert outcome["ok"] is False
    assert outcome["direction"] == "incoming"
    assert outcome["field"] == "port"
    assert CANARY not in result.text
    stored = api.get(f"/api/v1/accounts/{account_id}").json()["last_test_incoming"]
    assert stored["ok"] is False
    assert stored["message"] == outcome["message"]


def test_test_outgoing_needs_a_valid_recipient(api: Api, team: int) -> None:
    account_id = api.post("/api/v1/accounts", json=sketch()).json()["id"]
    response = api.post(f"/api/v1/accounts/{account_id}/test-outgoing", json={"to": "nobody"})
    assert response.status_code == 422
    assert api.post("/api/v1/accounts/999/test-incoming").status_code == 404


def test_users_and_teams(api: Api, team: int) -> None:
    user = api.post(
        "/api/v1/users", json={"name": "Ann", "email": "Ann@Example.com", "teams": ["Support"]}
    )
    assert user.status_code == 201, user.text
    assert user.json()["email"] == "ann@example.com"
    assert user.json()["team_ids"] == [team]
    again = api.post("/api/v1/users", json={"name": "Ann 2", "email": "ann@example.com"})
    assert again.status_code == 409
    assert api.get("/api/v1/teams").json() == [
        {"id": team, "name": "Support", "member_ids": [user.json()["id"]]}
    ]
    personal = sketch(role="personal", team=None, user="ann@example.com", email="ann@example.com")
    personal["incoming"]["username"] = "ann@example.com"
    created = api.post("/api/v1/accounts", json=personal)
    assert created.status_code == 201, created.text
    assert created.json()["owner_user_id"] == user.json()["id"]


def test_autodetect_finds_a_preset_without_network(api: Api) -> None:
    response = api.post("/api/v1/accounts/autodetect", json={"email": "someone@gmail.com"})
    assert response.status_code == 200, response.text
    found = response.json()
    assert found["source"] == "preset"
    assert found["incoming"]["host"] == "imap.gmail.com"
    bad = api.post("/api/v1/accounts/autodetect", json={"email": "nope"})
    assert bad.status_code == 422


def test_real_servers_pass_both_tests_and_the_account_can_replace_the_global_one(
    api: Api, dovecot: Dovecot, mail_user: MailUser, smtp_peer_factory: Callable[..., SmtpPeer]
) -> None:
    """The seed-002 migration: the old global account stays until the new one is verified."""
    old = api.post("/api/v1/accounts", json=sketch(role="global", team=None, is_default=True))
    assert old.status_code == 201, old.text
    peer = smtp_peer_factory("starttls")
    peer.add_login(mail_user.address, mail_user.password)
    api.context.settings.tls_ca_file = dovecot.ca_file
    doc = sketch(role="global", team=None, name="New office", email=mail_user.address)
    doc["incoming"].update(
        host=dovecot.host,
        port=dovecot.ports.imaps,
        username=mail_user.address,
        password=mail_user.password,
    )
    doc["outgoing"].update(host=peer.host, port=peer.port)
    created = api.post("/api/v1/accounts", json=doc)
    assert created.status_code == 201, created.text
    new_id = created.json()["id"]
    early = api.post(f"/api/v1/accounts/{new_id}/default")
    assert early.status_code == 409
    assert "test this account first" in early.json()["detail"]

    incoming = api.post(f"/api/v1/accounts/{new_id}/test-incoming").json()
    assert incoming["ok"] is True, incoming
    assert "INBOX" in json.dumps(incoming["details"])
    outgoing = api.post(
        f"/api/v1/accounts/{new_id}/test-outgoing", json={"to": "admin@example.com"}
    ).json()
    assert outgoing["ok"] is True, outgoing
    [received] = peer.received
    assert received.rcpt_tos == ("admin@example.com",)
    assert received.login == mail_user.address

    switched = api.post(f"/api/v1/accounts/{new_id}/default")
    assert switched.status_code == 200, switched.text
    previous = api.get(f"/api/v1/accounts/{old.json()['id']}").json()
    assert previous["is_default"] is False
    assert previous["active"] is True  # still usable until the admin deactivates it
    assert mail_user.password not in json.dumps(api.get("/api/v1/accounts").json())


def test_a_channel_fetches_from_one_account(api: Api, team: int) -> None:
    account_id = api.post("/api/v1/accounts", json=sketch()).json()["id"]
    unknown = api.post("/api/v1/channels", json={"address": "a@example.com", "account_id": 999})
    assert unknown.status_code == 422
    assert "no active account 999" in unknown.text
    linked = api.post(
        "/api/v1/channels", json={"address": "support@example.com", "account_id": account_id}
    )
    assert linked.status_code == 201, linked.text
    assert linked.json()["account_id"] == account_id
    twice = api.post(
        "/api/v1/channels", json={"address": "other@example.com", "account_id": account_id}
    )
    assert twice.status_code == 422
    assert "already feeds the channel support@example.com" in twice.text
    send_only = sketch(role="global", team=None, email="out@example.com", incoming=None)
    send_only["outgoing"].update(password=CANARY, same_credentials=False)
    out_id = api.post("/api/v1/accounts", json=send_only).json()["id"]
    nothing = api.post("/api/v1/channels", json={"address": "x@example.com", "account_id": out_id})
    assert "has no incoming server" in nothing.text


def test_host_names_are_looked_up_at_the_configured_dns_only(
    api: Api, team: int, local_dns: LocalDNS
) -> None:
    """CASEMAIL_DNS_NAMESERVERS (the tests' local server) answers every lookup of a server
    host name: nothing is asked of the machine's own resolver, which is off this machine."""
    created = api.post("/api/v1/accounts", json=sketch())
    assert created.status_code == 201, created.text
    assert ("imap.example.com.", "A") in local_dns.queries
    assert ("smtp.example.com.", "A") in local_dns.queries
    assert any("does not resolve" in w for w in created.json()["warnings"])
