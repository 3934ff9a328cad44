"""The REST API through FastAPI's TestClient, on a real database (SQLite and PostgreSQL).

Every response any test here receives is recorded, and the ``api`` fixture checks after each
test that neither the API token nor its stored hash ever appeared in a body or a header.
"""

from __future__ import annotations

import hashlib
import re
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from email.utils import format_datetime, make_msgid
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi.routing import APIRoute
from fastapi.testclient import TestClient
from sqlalchemy import select

from casemail.api.app import create_app
from casemail.api.routes import router
from casemail.bootstrap import build_context
from casemail.config import Settings
from casemail.db.models import ApiToken, Case, Channel, Message
from casemail.db.types import utcnow
from casemail.identity import load_identity
from tests.apisupport import Api, admin_token, api_operations
from tests.conftest import free_port
from tests.support import sample_message

CORE_ROUTES = {
    ("GET", "/api/v1/cases"),
    ("GET", "/api/v1/cases/{case_id}"),
    ("DELETE", "/api/v1/cases/{case_id}"),
    ("PATCH", "/api/v1/cases/{case_id}"),
    ("GET", "/api/v1/cases/{case_id}/messages"),
    ("GET", "/api/v1/quarantine"),
    ("GET", "/api/v1/inbound"),
    ("GET", "/api/v1/channels"),
    ("POST", "/api/v1/channels"),
    ("GET", "/api/v1/channels/{channel_id}/rules"),
    ("PUT", "/api/v1/channels/{channel_id}/rules"),
    ("PATCH", "/api/v1/channels/{channel_id}"),
}
MISSING_TOKEN = "Missing API token: send 'Authorization: Bearer <token>'"
INVALID_TOKEN = "Invalid or revoked API token"


def concrete(path: str) -> str:
    """A requestable path: every path parameter becomes 1."""
    return re.sub(r"\{[^}]+\}", "1", path)


def parse_time(value: str) -> datetime:
    parsed = datetime.fromisoformat(value)
    assert parsed.utcoffset() == timedelta(0), f"{value} is not UTC"
    return parsed


def mail_with_attachments() -> tuple[EmailMessage, bytes, bytes]:
    pdf = b"%PDF-1.4\n" + bytes(range(256)) * 8 + b"\n%%EOF\n"
    png = b"\x89PNG\r\n\x1a\n" + b"\x00" * 64
    message = EmailMessage()
    message["From"] = "Bob Builder <bob@customer.example>"
    message["To"] = "Support <support@example.com>"
    message["Cc"] = "carol@customer.example"
    message["Subject"] = "Invoice 4711 is wrong"
    message["Message-ID"] = make_msgid(domain="customer.example")
    message["Date"] = format_datetime(datetime(2024, 3, 1, 9, 30, tzinfo=UTC))
    message.set_content("The total is off by 10 EUR.\n")
    message.add_alternative(
        '<p>The total is off by 10 EUR. <img src="cid:logo@customer.example"></p>',
        subtype="html",
    )
    html_part = message.get_body(preferencelist=("html",))
    assert isinstance(html_part, EmailMessage)
    html_part.add_related(png, "image", "png", cid="<logo@customer.example>")
    message.add_attachment(pdf, maintype="application", subtype="pdf", filename="invoice-4711.pdf")
    return message, pdf, png


# --- health and OpenAPI -------------------------------------------------------------------


def test_healthz_reports_database_ok_without_a_token(api: Api) -> None:
    response = api.client.get("/healthz")
    assert response.status_code == 200
    assert response.json() == {"status": "ok", "database": "ok", "details": {}}


def test_healthz_reports_unreachable_database_as_503_without_leaking_the_url(
    tmp_path: Path,
) -> None:
    port = free_port()
    url = f"postgresql+psycopg://casemail:hunter2@127.0.0.1:{port}/casemail"
    context = build_context(Settings(home=tmp_path, database_url=url), migrate=False)
    with TestClient(create_app(context)) as client:
        response = client.get("/healthz")
    context.db.dispose()
    assert response.status_code == 503
    body = response.json()
    assert body["status"] == "degraded"
    assert body["database"] == "error: OperationalError"
    assert "hunter2" not in response.text
    assert str(port) not in response.text


def test_openapi_lists_every_route_and_the_bearer_scheme(api: Api) -> None:
    response = api.client.get("/api/v1/openapi.json")
    assert response.status_code == 200
    spec = response.json()
    assert spec["info"]["title"] == "casemail"
    assert set(api_operations(api)) >= CORE_ROUTES
    assert "/healthz" in spec["paths"]
    assert spec["components"]["securitySchemes"]["HTTPBearer"]["scheme"] == "bearer"
    for path, operations in spec["paths"].items():
        if not path.startswith("/api/v1"):
            continue
        for method, operation in operations.items():
            assert operation["security"] == [{"HTTPBearer": []}], f"{method} {path}"
            assert "401" in operation["responses"], f"{method} {path}"
    # API tokens are never modelled: no schema for them, no field with their hash.
    assert not [name for name in spec["components"]["schemas"] if "apitoken" in name.lower()]
    assert "token_hash" not in response.text


def test_route_table_matches_the_constant(api: Api) -> None:
    """CORE_ROUTES is the real table of casemail.api.routes (other routers are extra)."""
    router_routes = {
        (method, route.path)
        for route in router.routes
        if isinstance(route, APIRoute)
        for method in route.methods or ()
    }
    assert router_routes == CORE_ROUTES
    assert api.client.get("/api/v1/docs").status_code == 200


# --- authentication -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("headers", "detail"),
    [
        ({}, MISSING_TOKEN),
        ({"Authorization": ""}, MISSING_TOKEN),
        ({"Authorization": "Bearer"}, MISSING_TOKEN),
        ({"Authorization": "Basic dXNlcjpwYXNz"}, MISSING_TOKEN),
        ({"Authorization": "Bearer cm_not-a-real-token"}, INVALID_TOKEN),
        ({"Authorization": "Bearer " + "x" * 5000}, INVALID_TOKEN),
    ],
    ids=["none", "empty", "no-credentials", "basic", "unknown", "huge"],
)
def test_every_api_route_refuses_without_a_valid_token(
    api: Api, headers: dict[str, str], detail: str
) -> None:
    """All of /api/v1, as documented by the app itself, so routes added later are covered."""
    operations = api_operations(api)
    assert set(operations) >= CORE_ROUTES
    for method, path in operations:
        body = {"address": "sneaky@example.com"} if method in ("POST", "PUT", "PATCH") else None
        response = api.client.request(method, concrete(path), headers=headers, json=body)
        where = f"{method} {path}"
        assert response.status_code == 401, where
        assert response.json() == {"detail": detail}, where
        assert response.headers["WWW-Authenticate"] == "Bearer", where
    with api.db.read() as session:
        assert session.scalars(select(Channel)).all() == []


def test_token_hash_itself_is_not_a_token(api: Api) -> None:
    response = api.client.get(
        "/api/v1/channels", headers={"Authorization": f"Bearer {api.token_hash}"}
    )
    assert response.status_code == 401
    assert response.json() == {"detail": INVALID_TOKEN}


def test_auth_runs_before_validation(api: Api) -> None:
    """Without a token, a bad request learns nothing, not even that it is malformed."""
    response = api.client.post("/api/v1/channels", json={"nonsense": True})
    assert response.status_code == 401
    response = api.client.get("/api/v1/cases/not-a-number/messages")
    assert response.status_code == 401
    response = api.client.get("/api/v1/cases", params={"limit": "0"})
    assert response.status_code == 401


@pytest.mark.parametrize(("method", "path"), sorted(CORE_ROUTES))
def test_every_api_route_accepts_the_token(api: Api, method: str, path: str) -> None:
    channel_id = api.channel()
    api.deliver(channel_id, sample_message())
    if method == "POST":
        response = api.post(path, json={"address": "billing@example.com"})
        assert response.status_code == 201
    elif method == "DELETE":
        response = api.delete(concrete(path))
        assert response.status_code == 204, response.text
    elif method == "PATCH":
        response = api.patch(concrete(path), json={})  # nothing to change: still accepted
        assert response.status_code == 200, response.text
    else:
        response = api.get(concrete(path))
        assert response.status_code == 200, response.text


def test_token_use_is_recorded_and_revocation_takes_effect(api: Api) -> None:
    with api.db.read() as session:
        row = session.scalars(select(ApiToken)).one()
        assert row.last_used_at is None
        # Only the SHA-256 is stored, never the token itself.
        assert row.token_hash == api.token_hash
        assert row.token_hash != api.token

    assert api.get("/api/v1/channels").status_code == 200
    with api.db.write() as session:
        row = session.scalars(select(ApiToken)).one()
        assert row.last_used_at is not None
        assert utcnow() - row.last_used_at < timedelta(minutes=5)
        row.revoked_at = utcnow()

    response = api.get("/api/v1/channels")
    assert response.status_code == 401
    assert response.json() == {"detail": INVALID_TOKEN}


def test_any_of_several_tokens_works(api: Api) -> None:
    with api.db.write() as session:
        second = admin_token(session)
    assert second != api.token
    response = api.client.get("/api/v1/channels", headers={"Authorization": f"Bearer {second}"})
    assert response.status_code == 200
    assert second not in response.text
    # The scheme name is case-insensitive (RFC 7235 section 2.1).
    response = api.client.get("/api/v1/channels", headers={"Authorization": f"bearer {api.token}"})
    assert response.status_code == 200


# --- channels -----------------------------------------------------------------------------


def test_channels_start_empty_and_post_creates_a_normalised_channel(api: Api) -> None:
    assert api.get("/api/v1/channels").json() == []

    response = api.post(
        "/api/v1/channels",
        json={
            "address": "  Support@Example.COM ",
            "name": "Support desk",
            "allowed_networks": ["192.0.2.7", "2001:db8::/32", "10.1.2.3/8"],
            "subject_tag_prefix": "Ticket",
        },
    )
    assert response.status_code == 201, response.text
    created = response.json()
    assert created["address"] == "support@example.com"
    assert created["name"] == "Support desk"
    assert created["allowed_networks"] == ["192.0.2.7/32", "2001:db8::/32", "10.0.0.0/8"]
    assert created["subject_tag_prefix"] == "Ticket"
    assert created["active"] is True
    assert created["purge_days"] == 30
    assert created["error_address"] is None
    assert abs(parse_time(created["created_at"]) - utcnow()) < timedelta(minutes=5)
    assert set(created) == {
        "id",
        "name",
        "address",
        "active",
        "subject_tag_prefix",
        "allowed_networks",
        "error_address",
        "purge_days",
        "account_id",
        "rules",
        "created_at",
    }
    assert created["account_id"] is None
    assert created["rules"]["decisions"] == {}  # the default table

    second = api.post("/api/v1/channels", json={"address": "billing@example.com"}).json()
    assert second["name"] == "billing@example.com"
    assert second["subject_tag_prefix"] == "Case"

    listed = api.get("/api/v1/channels").json()
    assert listed == [created, second]


def test_channel_rules_read_write_and_refuse_what_cannot_work(api: Api) -> None:
    channel = api.post("/api/v1/channels", json={"address": "support@example.com"}).json()
    url = f"/api/v1/channels/{channel['id']}/rules"
    defaults = api.get(url).json()
    assert defaults["closed_case_reply"] == "reopen"
    assert defaults["rate_limit"] == {"messages": 100, "minutes": 10}

    wanted = {"known_senders_only": True, "decisions": {"auto-reply-no-case": "discard"}}
    response = api.put(url, json=wanted)
    assert response.status_code == 200, response.text
    assert api.get(url).json()["decisions"] == {"auto-reply-no-case": "discard"}
    assert api.get(url).json()["known_senders_only"] is True

    refused = api.put(url, json={"decisions": {"loop": "create-case"}})
    assert refused.status_code == 422
    assert "cannot be 'create-case'" in refused.text
    unknown_team = api.put(url, json={"team_id": 99})
    assert unknown_team.status_code == 422
    assert unknown_team.json()["detail"] == "no team 99 in this channel's company"
    assert api.get("/api/v1/channels/999/rules").status_code == 404
    assert api.get(url).json()["decisions"] == {"auto-reply-no-case": "discard"}  # unchanged


def test_duplicate_channel_is_a_clear_409(api: Api) -> None:
    first = api.post("/api/v1/channels", json={"address": "support@example.com"})
    assert first.status_code == 201
    response = api.post("/api/v1/channels", json={"address": "SUPPORT@example.com", "name": "x"})
    assert response.status_code == 409
    assert response.json() == {"detail": "a channel for support@example.com exists already"}
    assert [c["name"] for c in api.get("/api/v1/channels").json()] == ["support@example.com"]


@pytest.mark.parametrize(
    ("address", "reason"),
    [
        ("not-an-address", "An email address must have an @-sign."),
        ("support@", "There must be something after the @-sign."),
        ("@example.com", "There must be something before the @-sign."),
        ("two words@example.com", "invalid character"),
        ("support@exa mple.com", "invalid character"),
        ("", "An email address must have an @-sign."),
    ],
)
def test_invalid_channel_address_is_a_clear_422(api: Api, address: str, reason: str) -> None:
    response = api.post("/api/v1/channels", json={"address": address})
    assert response.status_code == 422
    detail = response.json()["detail"]
    assert isinstance(detail, str)
    assert detail.startswith(f"{address!r} is not a valid email address")
    assert reason in detail
    assert api.get("/api/v1/channels").json() == []


def test_invalid_network_is_a_clear_422(api: Api) -> None:
    response = api.post(
        "/api/v1/channels",
        json={"address": "support@example.com", "allowed_networks": ["10.0.0.0/8", "intranet"]},
    )
    assert response.status_code == 422
    assert response.json() == {"detail": "'intranet' is not an IP address or CIDR range"}
    assert api.get("/api/v1/channels").json() == []


@pytest.mark.parametrize(
    ("body", "location", "kind"),
    [
        ({}, ["body", "address"], "missing"),
        ({"address": 42}, ["body", "address"], "string_type"),
        ({"address": "a@example.com", "owner": "me"}, ["body", "owner"], "extra_forbidden"),
        ({"address": "a@" + "x" * 320 + ".com"}, ["body", "address"], "string_too_long"),
        (
            {"address": "a@example.com", "subject_tag_prefix": ""},
            ["body", "subject_tag_prefix"],
            "string_too_short",
        ),
        (
            {"address": "a@example.com", "subject_tag_prefix": "[#]"},
            ["body", "subject_tag_prefix"],
            "string_pattern_mismatch",
        ),
        (
            {"address": "a@example.com", "allowed_networks": "10.0.0.0/8"},
            ["body", "allowed_networks"],
            "list_type",
        ),
    ],
)
def test_malformed_channel_body_is_a_structured_422(
    api: Api, body: dict[str, Any], location: list[str], kind: str
) -> None:
    response = api.post("/api/v1/channels", json=body)
    assert response.status_code == 422
    errors = response.json()["detail"]
    assert [(e["loc"], e["type"]) for e in errors] == [(location, kind)]
    assert errors[0]["msg"]
    assert api.get("/api/v1/channels").json() == []


def test_channel_body_must_be_json(api: Api) -> None:
    response = api.post(
        "/api/v1/channels", content=b"address=a@example.com", headers={"Content-Type": "text/plain"}
    )
    assert response.status_code == 422


# --- cases and messages -------------------------------------------------------------------


def test_cases_list_and_detail_after_ingest(api: Api) -> None:
    channel_id = api.channel()
    first = api.deliver(channel_id, sample_message(subject="Printer on fire"))
    second = api.deliver(
        channel_id,
        sample_message(
            sender="Jürgen Müller <Juergen@Kunde.example>",
            subject="Grüße aus Köln",
        ),
    )
    assert first.outcome == second.outcome == "created"

    response = api.get("/api/v1/cases")
    assert response.status_code == 200
    cases = response.json()
    # Most recent activity first.
    assert [c["id"] for c in cases] == [second.case_id, first.case_id]
    newest, oldest = cases
    assert newest["subject"] == "Grüße aus Köln"
    assert newest["contact"]["email"] == "juergen@kunde.example"
    assert newest["contact"]["name"] == "Jürgen Müller"
    assert oldest["subject"] == "Printer on fire"
    assert oldest["contact"]["email"] == "alice@customer.example"
    assert oldest["contact"]["name"] == "Alice Example"
    for case in cases:
        assert case["channel_id"] == channel_id
        assert case["status"] == "new"
        for key in ("created_at", "updated_at", "last_message_at"):
            assert abs(parse_time(case[key]) - utcnow()) < timedelta(minutes=5)

    detail = api.get(f"/api/v1/cases/{first.case_id}").json()
    assert detail == {**oldest, "message_count": 1}


def test_case_list_filters_and_pages(api: Api) -> None:
    channel_id = api.channel()
    ids = [api.deliver(channel_id, sample_message(subject=f"Case {n}")).case_id for n in range(5)]
    newest_first = list(reversed(ids))
    assert [c["id"] for c in api.get("/api/v1/cases").json()] == newest_first
    page = api.get("/api/v1/cases", params={"limit": 2, "offset": 1}).json()
    assert [c["id"] for c in page] == newest_first[1:3]
    assert api.get("/api/v1/cases", params={"offset": 5}).json() == []
    assert len(api.get("/api/v1/cases", params={"status": "new"}).json()) == 5
    assert api.get("/api/v1/cases", params={"status": "closed"}).json() == []

    for params in ({"status": "bogus"}, {"limit": 0}, {"limit": 501}, {"offset": -1}):
        response = api.get("/api/v1/cases", params=params)
        assert response.status_code == 422, params
        (error,) = response.json()["detail"]
        assert error["loc"] == ["query", next(iter(params))]


def test_case_messages_show_bodies_addresses_and_attachment_metadata(api: Api) -> None:
    channel_id = api.channel()
    message, pdf, png = mail_with_attachments()
    result = api.deliver(channel_id, message)
    assert result.outcome == "created"

    response = api.get(f"/api/v1/cases/{result.case_id}/messages")
    assert response.status_code == 200
    (stored,) = response.json()
    assert stored["case_id"] == result.case_id
    assert stored["direction"] == "inbound"
    assert stored["message_id"] == message["Message-ID"].strip("<>")
    assert stored["subject"] == "Invoice 4711 is wrong"
    assert stored["from_address"] == "bob@customer.example"
    assert stored["from_name"] == "Bob Builder"
    assert stored["to_addresses"] == [{"email": "support@example.com", "name": "Support"}]
    assert stored["cc_addresses"] == [{"email": "carol@customer.example", "name": None}]
    assert parse_time(stored["sent_at"]) == datetime(2024, 3, 1, 9, 30, tzinfo=UTC)
    assert stored["text_body"].strip() == "The total is off by 10 EUR."
    assert "cid:logo@customer.example" in stored["html_body"]
    assert stored["in_reply_to"] is None
    assert stored["references"] == []
    assert stored["parse_defects"] == []
    assert {"rule": "create-case", "detail": f"new case #{result.case_id}"} in stored["rule_hits"]

    by_type = {a["content_type"]: a for a in stored["attachments"]}
    assert set(by_type) == {"application/pdf", "image/png"}
    attachment = by_type["application/pdf"]
    assert attachment["filename"] == "invoice-4711.pdf"
    assert attachment["size"] == len(pdf)
    assert attachment["sha256"] == hashlib.sha256(pdf).hexdigest()
    assert attachment["inline"] is False
    assert attachment["content_id"] is None
    image = by_type["image/png"]
    assert image["size"] == len(png)
    assert image["sha256"] == hashlib.sha256(png).hexdigest()
    assert image["content_id"] == "logo@customer.example"
    assert image["inline"] is True
    # Metadata only: attachment content never travels in the message listing.
    assert all("data" not in a and "content" not in a for a in stored["attachments"])
    assert "%PDF-1.4" not in response.text


def test_reply_is_threaded_into_the_same_case(api: Api) -> None:
    channel_id = api.channel()
    original = sample_message(subject="Printer on fire", body="It is smoking.\n")
    first = api.deliver(channel_id, original)
    reply = sample_message(
        subject="Re: Printer on fire", body="Now it is out.\n", in_reply_to=original["Message-ID"]
    )
    second = api.deliver(channel_id, reply)
    assert second.outcome == "appended"
    assert second.case_id == first.case_id

    assert len(api.get("/api/v1/cases").json()) == 1
    detail = api.get(f"/api/v1/cases/{first.case_id}").json()
    assert detail["message_count"] == 2
    assert detail["subject"] == "Printer on fire"

    messages = api.get(f"/api/v1/cases/{first.case_id}/messages").json()
    assert [m["text_body"].strip() for m in messages] == ["It is smoking.", "Now it is out."]
    assert [m["subject"] for m in messages] == ["Printer on fire", "Re: Printer on fire"]
    assert messages[1]["in_reply_to"] == original["Message-ID"].strip("<>")
    assert {"rule": "thread-references", "detail": "In-Reply-To/References"} in messages[1][
        "rule_hits"
    ]


def test_duplicate_delivery_does_not_add_a_message(api: Api) -> None:
    channel_id = api.channel()
    message = sample_message()
    first = api.deliver(channel_id, message)
    again = api.deliver(channel_id, message)
    assert again.outcome == "duplicate"
    assert again.case_id == first.case_id
    assert api.get(f"/api/v1/cases/{first.case_id}").json()["message_count"] == 1
    assert len(api.get(f"/api/v1/cases/{first.case_id}/messages").json()) == 1


@pytest.mark.parametrize("path", ["/api/v1/cases/{id}", "/api/v1/cases/{id}/messages"])
def test_unknown_case_is_a_clear_404(api: Api, path: str) -> None:
    channel_id = api.channel()
    known = api.deliver(channel_id, sample_message()).case_id
    assert known is not None
    for missing in (known + 1, 0, -1, 2**31 - 1):
        response = api.get(path.format(id=missing))
        assert response.status_code == 404, missing
        assert response.json() == {"detail": f"Case {missing} not found"}
    response = api.get(path.format(id="abc"))
    assert response.status_code == 422
    assert response.json()["detail"][0]["loc"] == ["path", "case_id"]


def test_a_deleted_case_is_gone_from_every_view_and_its_mail_is_kept(api: Api) -> None:
    channel_id = api.channel()
    kept = api.deliver(channel_id, sample_message(subject="Kept")).case_id
    gone = api.deliver(channel_id, sample_message(subject="Deleted")).case_id

    response = api.delete(f"/api/v1/cases/{gone}")

    assert response.status_code == 204
    assert response.content == b""
    assert [c["id"] for c in api.get("/api/v1/cases").json()] == [kept]
    for path in (f"/api/v1/cases/{gone}", f"/api/v1/cases/{gone}/messages"):
        assert api.get(path).status_code == 404
    again = api.delete(f"/api/v1/cases/{gone}")
    assert again.status_code == 404
    assert again.json() == {"detail": f"Case {gone} not found"}
    assert api.delete("/api/v1/cases/999999").status_code == 404
    with api.db.read() as session:
        case = session.get(Case, gone)
        assert case is not None
        assert case.deleted_at is not None
        messages = session.scalars(select(Message).where(Message.case_id == gone)).all()
        assert len(messages) == 1  # the email history (and its raw mail) stays


# --- quarantine ---------------------------------------------------------------------------


def test_quarantine_lists_held_mail_with_reasons(api: Api) -> None:
    channel_id = api.channel(address="support@example.com")
    assert api.get("/api/v1/quarantine").json() == []

    empty = api.deliver(channel_id, b"\r\n")
    no_from = api.deliver(
        channel_id, b"To: support@example.com\r\nSubject: who am I\r\n\r\nanonymous\r\n"
    )
    inactive_id = api.channel(address="old@example.com")
    with api.db.write() as session:
        inactive = session.get_one(Channel, inactive_id)
        inactive.active = False
        inactive.purge_days = 7
    to_inactive = api.deliver(inactive_id, sample_message(to="old@example.com"))
    api.deliver(channel_id, sample_message())  # a good one: becomes a case, not quarantine
    assert {empty.outcome, no_from.outcome, to_inactive.outcome} == {"quarantined"}

    assert len(api.get("/api/v1/quarantine", params={"state": "all"}).json()) == 3
    assert api.get("/api/v1/quarantine", params={"state": "released"}).json() == []
    response = api.get("/api/v1/quarantine")
    assert response.status_code == 200
    entries = response.json()
    # Newest first.
    assert [e["id"] for e in entries] == [
        to_inactive.quarantine_id,
        no_from.quarantine_id,
        empty.quarantine_id,
    ]
    by_code = {e["reason_code"]: e for e in entries}
    assert set(by_code) == {"empty-message", "no-sender", "channel-inactive"}
    assert by_code["empty-message"]["inbound_id"] == empty.inbound_id
    assert "empty" in by_code["empty-message"]["reason"]
    assert "From" in by_code["no-sender"]["reason"]
    assert by_code["channel-inactive"]["reason"] == "Channel old@example.com is inactive."
    assert by_code["channel-inactive"]["channel_id"] == inactive_id
    for entry in entries:
        assert entry["state"] == "held"
        days = 7 if entry["channel_id"] == inactive_id else 30
        created, purge = parse_time(entry["created_at"]), parse_time(entry["purge_after"])
        assert purge - created == timedelta(days=days)

    assert len(api.get("/api/v1/quarantine", params={"state": "held"}).json()) == 3
    assert api.get("/api/v1/quarantine", params={"state": "released"}).json() == []
    assert api.get("/api/v1/quarantine", params={"state": "discarded"}).json() == []
    page = api.get("/api/v1/quarantine", params={"limit": 1, "offset": 1}).json()
    assert [e["id"] for e in page] == [no_from.quarantine_id]
    response = api.get("/api/v1/quarantine", params={"state": "bogus"})
    assert response.status_code == 422
    assert response.json()["detail"][0]["loc"] == ["query", "state"]
    # Quarantined mail opened no case.
    assert len(api.get("/api/v1/cases").json()) == 1


# --- secrets ------------------------------------------------------------------------------


def test_no_route_ever_returns_a_secret(api: Api) -> None:
    """Explicitly, on top of the fixture's check: walk every route, good and bad requests."""
    channel_id = api.channel()
    message, _, _ = mail_with_attachments()
    api.deliver(channel_id, message)
    api.deliver(channel_id, b"")
    with api.db.write() as session:
        admin_token(session)

    seen: list[httpx.Response] = [
        api.client.get("/healthz"),
        api.client.get("/api/v1/openapi.json"),
        api.client.get("/api/v1/docs"),
        api.post("/api/v1/channels", json={"address": "new@example.com"}),
        api.post("/api/v1/channels", json={"address": "new@example.com"}),
        api.post("/api/v1/channels", json={"address": "bad"}),
        api.client.get("/api/v1/cases", headers={"Authorization": f"Bearer {api.token}x"}),
    ]
    for method, path in api_operations(api):
        if method == "GET":
            seen.append(api.get(concrete(path)))
            seen.append(api.client.get(concrete(path)))
    assert {r.status_code for r in seen} >= {200, 201, 401, 409, 422}
    with api.db.read() as session:
        hashes = list(session.scalars(select(ApiToken.token_hash)))
    assert len(hashes) == 2
    for response in seen:
        for token_hash in hashes:
            assert token_hash not in response.text


def test_inbound_lists_discarded_mail_with_its_reason(api: Api) -> None:
    channel = api.channel()
    with api.db.write() as session:  # created on first use where the database was emptied
        instance = load_identity(session).instance_id
    looped = sample_message(subject="We received your message")
    looped["X-Casemail-Loop"] = instance
    api.deliver(channel, looped)
    api.deliver(channel, sample_message(subject="A real question"))

    discarded = api.get("/api/v1/inbound", params={"state": "discarded"}).json()
    assert len(discarded) == 1
    assert discarded[0]["rule_hits"][0]["rule"] == "loop-header"
    states = [r["state"] for r in api.get("/api/v1/inbound").json()]
    assert states == ["done", "discarded"]  # newest first
    assert api.get("/api/v1/inbound", params={"state": "lost"}).status_code == 422


def test_channel_settings_are_changed_and_checked(api: Api) -> None:
    channel_id = api.channel()
    changed = api.patch(
        f"/api/v1/channels/{channel_id}",
        json={"error_address": "Errors@Example.com", "purge_days": 14, "name": "Help desk"},
    )
    assert changed.status_code == 200, changed.text
    body = changed.json()
    assert (body["error_address"], body["purge_days"], body["name"]) == (
        "errors@example.com",
        14,
        "Help desk",
    )
    assert body["active"] is True  # left out: unchanged
    cleared = api.patch(f"/api/v1/channels/{channel_id}", json={"error_address": ""}).json()
    assert cleared["error_address"] is None
    for bad in ({"purge_days": 0}, {"error_address": "nobody"}, {"allowed_networks": ["x"]}):
        assert api.patch(f"/api/v1/channels/{channel_id}", json=bad).status_code == 422, bad
    assert api.patch("/api/v1/channels/999", json={"name": "x"}).status_code == 404
