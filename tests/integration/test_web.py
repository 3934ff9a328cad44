"""The web app through the real ASGI app, on both databases: sign-in, sessions, CSRF, company
isolation on every page, and hostile mail rendered without running anything.

The browser tests (tests/e2e/test_browser.py) drive the same pages in Chromium.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass

import httpx
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from casemail.auth.signin import MAX_FAILED_SIGN_INS
from casemail.channels.service import add_channel
from casemail.db.models import Account, Installation, QuarantineEntry, User
from casemail.users.companies import add_company
from casemail.users.service import create_user, set_password
from casemail.web import admin as web_admin
from casemail.web import routes as web_routes
from casemail.web import wizard as web_wizard
from tests.apisupport import Api
from tests.companysupport import Globex
from tests.support import sample_message

PASSWORD = "correct horse battery"
CSRF = re.compile(r'name="csrf" value="([^"]+)"')


@dataclass
class Browser:
    """A TestClient with its own cookie jar: one signed-in user."""

    client: TestClient

    def csrf(self, path: str) -> str:
        found = CSRF.search(self.client.get(path).text)
        assert found is not None, f"no CSRF token on {path}"
        return found.group(1)

    def post(self, path: str, data: dict[str, str], *, token: str | None = None) -> httpx.Response:
        form = {**data, "csrf": token if token is not None else self.csrf("/ui/cases")}
        response: httpx.Response = self.client.post(path, data=form, follow_redirects=False)
        return response


def _user(api: Api, email: str, *, role: str = "agent", company_id: int = 1) -> None:
    with api.db.write() as session:
        user = create_user(
            session,
            name=email.split("@")[0].title(),
            email=email,
            role="admin" if role == "admin" else "agent",
            company_id=company_id,
        )
        set_password(user, PASSWORD)


def _client(api: Api) -> TestClient:
    """A client with its own cookies whose responses the ``api`` fixture checks for secrets
    too, as it checks its own."""
    return api.watch(TestClient(api.app))


def _signed_in(api: Api, email: str) -> Browser:
    client = _client(api)
    browser = Browser(client)
    response = _sign_in(client, email, PASSWORD)
    assert response.status_code == 303, response.text
    assert response.headers["location"] == "/ui/cases"
    return browser


def _sign_in(client: TestClient, email: str, password: str) -> httpx.Response:
    form = client.get("/ui/signin")
    token = CSRF.search(form.text)
    assert token is not None
    data = {"email": email, "password": password, "csrf": token.group(1)}
    response: httpx.Response = client.post("/ui/signin", data=data, follow_redirects=False)
    return response


@pytest.fixture
def acme(api: Api) -> Iterator[Browser]:
    _user(api, "ann@acme.example", role="admin")
    browser = _signed_in(api, "ann@acme.example")
    yield browser
    browser.client.close()


def test_pages_need_a_session_and_send_visitors_to_sign_in(api: Api) -> None:
    client = _client(api)
    for path in ("/ui/cases", "/ui/cases/1", "/ui/admin/quarantine", "/ui/admin/outbox"):
        response = client.get(path, follow_redirects=False)
        assert response.status_code == 303, path
        assert response.headers["location"].startswith("/ui/signin?next=")
    forged = client.get("/ui/cases", cookies={"casemail_session": "x.y.z"}, follow_redirects=False)
    assert forged.status_code == 303


def test_sign_in_refuses_wrong_passwords_alike_and_locks_after_repeated_failures(
    api: Api,
) -> None:
    _user(api, "bob@acme.example")
    client = _client(api)
    unknown = _sign_in(client, "nobody@acme.example", PASSWORD)
    wrong = _sign_in(client, "bob@acme.example", "wrong password!")
    assert unknown.status_code == wrong.status_code == 401
    assert "Wrong email address or password." in unknown.text
    assert "Wrong email address or password." in wrong.text
    for _ in range(MAX_FAILED_SIGN_INS - 1):
        _sign_in(client, "bob@acme.example", "wrong password!")
    locked = _sign_in(client, "bob@acme.example", PASSWORD)  # right, but locked now
    assert locked.status_code == 401
    assert "Too many failed sign-ins" in locked.text


def test_sign_in_form_without_its_token_is_refused(api: Api) -> None:
    _user(api, "bob@acme.example")
    client = _client(api)
    data = {"email": "bob@acme.example", "password": PASSWORD, "csrf": "made-up"}
    response = client.post("/ui/signin", data=data, follow_redirects=False)
    assert response.status_code == 403
    assert "casemail_session" not in response.headers.get("set-cookie", "")


def test_forms_without_the_sessions_csrf_token_are_refused(api: Api, acme: Browser) -> None:
    channel_id = api.channel()
    case_id = api.deliver(channel_id, sample_message()).case_id
    for token in ("", "not-the-token"):
        response = acme.post(f"/ui/cases/{case_id}/update", {"status": "closed"}, token=token)
        assert response.status_code == 403, token
        assert "expired or did not come from this site" in response.text
    foreign = acme.client.post(
        f"/ui/cases/{case_id}/update",
        data={"status": "closed", "csrf": acme.csrf("/ui/cases")},
        headers={"Origin": "https://evil.example"},
        follow_redirects=False,
    )
    assert foreign.status_code == 403
    assert api.get(f"/api/v1/cases/{case_id}").json()["status"] == "new"
    done = acme.post(f"/ui/cases/{case_id}/update", {"status": "closed"})
    assert done.status_code == 303
    assert api.get(f"/api/v1/cases/{case_id}").json()["status"] == "closed"


def test_the_case_list_searches_and_filters(api: Api, acme: Browser) -> None:
    channel_id = api.channel()
    api.deliver(channel_id, sample_message(subject="Printer on fire"))
    api.deliver(channel_id, sample_message(subject="Invoice 42", sender="bea@other.example"))
    page = acme.client.get("/ui/cases", params={"q": "invoice"}).text
    assert "Invoice 42" in page
    assert "Printer on fire" not in page
    by_contact = acme.client.get("/ui/cases", params={"q": "alice@customer"}).text
    assert "Printer on fire" in by_contact
    assert "Invoice 42" not in by_contact
    rows = acme.client.get("/ui/cases", params={"status": "closed"}, headers={"HX-Request": "true"})
    assert "No cases match." in rows.text
    assert "<html" not in rows.text  # htmx gets the rows alone


def test_a_user_sees_nothing_of_another_company_on_any_page(api: Api, acme: Browser) -> None:
    with api.db.write() as session:
        other = add_company(session, "Globex").id
    _user(api, "gus@globex.example", role="admin", company_id=other)
    with api.db.write() as session:
        globex_channel = add_channel(session, address="help@globex.example", company_id=other).id
    result = api.deliver(globex_channel, sample_message(subject="globex secret"))
    api.deliver(globex_channel, b"")
    with api.db.read() as session:
        entry_id = session.scalars(select(QuarantineEntry.id)).one()
        message_pk = result.message_pk
    case_id = result.case_id
    for path in (
        f"/ui/cases/{case_id}",
        f"/ui/messages/{message_pk}/html",
    ):
        assert acme.client.get(path).status_code == 404, path
    for path in ("/ui/cases", "/ui/admin/quarantine", "/ui/admin/outbox", "/ui/admin/accounts"):
        page = acme.client.get(path)
        assert page.status_code == 200, path
        assert "globex" not in page.text.lower(), path
    attempts = [
        (f"/ui/cases/{case_id}/update", {"status": "closed"}),
        (f"/ui/cases/{case_id}/reply", {"to": "x@acme.example", "text": "hi"}),
        (f"/ui/admin/quarantine/{entry_id}/discard", {}),
        (f"/ui/admin/quarantine/{entry_id}/reprocess", {}),
    ]
    for path, data in attempts:
        assert acme.post(path, data).status_code == 404, path
    gus = _signed_in(api, "gus@globex.example")
    assert "globex secret" in gus.client.get(f"/ui/cases/{case_id}").text
    assert f'id="entry-{entry_id}"' in gus.client.get("/ui/admin/quarantine").text


def test_agents_cannot_open_admin_pages(api: Api) -> None:
    _user(api, "al@acme.example")
    agent = _signed_in(api, "al@acme.example")
    for path in ("/ui/admin/quarantine", "/ui/admin/outbox", "/ui/admin/accounts"):
        assert agent.client.get(path).status_code == 403, path
    assert agent.client.get("/ui/cases").status_code == 200


def test_a_new_password_or_deactivation_ends_the_session(api: Api, acme: Browser) -> None:
    _user(api, "cy@acme.example")
    cy = _signed_in(api, "cy@acme.example")
    assert cy.client.get("/ui/cases", follow_redirects=False).status_code == 200
    with api.db.write() as session:
        user = session.scalars(select(User).where(User.email == "cy@acme.example")).one()
        set_password(user, "another long password")
    assert cy.client.get("/ui/cases", follow_redirects=False).status_code == 303
    with api.db.write() as session:
        ann = session.scalars(select(User).where(User.email == "ann@acme.example")).one()
        ann.active = False
    assert acme.client.get("/ui/cases", follow_redirects=False).status_code == 303


HOSTILE_HTML = """<html><body><p>Hello</p>
<script>document.title='pwned'</script>
<img src="x" onerror="alert(1)"><a href="javascript:alert(2)">click</a>
<svg><script>alert(3)</script><animate onbegin="alert(4)"/></svg>
<img src="https://tracker.example/pixel.gif">
</body></html>"""


def test_hostile_html_is_shown_in_a_locked_frame(api: Api, acme: Browser) -> None:
    message = sample_message(subject="Hostile")
    message.add_alternative(HOSTILE_HTML, subtype="html")
    result = api.deliver(api.channel(), message)
    case_page = acme.client.get(f"/ui/cases/{result.case_id}")
    policy = case_page.headers["content-security-policy"]
    assert "script-src 'self'" in policy
    assert "unsafe-inline" not in policy.split("style-src")[0]
    assert (
        f'<iframe class="body-html" sandbox title="Message {result.message_pk}"' in case_page.text
    )
    body = acme.client.get(f"/ui/messages/{result.message_pk}/html")
    lowered = body.text.lower()
    for payload in ("<script", "onerror", "javascript:", "onbegin", "<svg"):
        assert payload not in lowered, payload
    frame_policy = body.headers["content-security-policy"]
    assert "sandbox" in frame_policy
    assert "default-src 'none'" in frame_policy
    assert "img-src data:;" in frame_policy  # no remote images until asked
    shown = acme.client.get(f"/ui/messages/{result.message_pk}/html", params={"images": "1"})
    assert "https:" in shown.headers["content-security-policy"]


def test_quarantine_actions_from_the_admin_page(api: Api, acme: Browser) -> None:
    channel_id = api.channel()
    case_id = api.deliver(channel_id, sample_message(subject="Existing case")).case_id
    api.client.put(
        f"/api/v1/channels/{channel_id}/rules",
        headers=api.auth,
        json={"known_senders_only": True, "decisions": {"unknown-sender": "quarantine"}},
    )
    held = api.deliver(channel_id, sample_message(sender="stranger@elsewhere.example"))
    assert held.outcome == "quarantined", held
    page = acme.client.get("/ui/admin/quarantine").text
    assert f'id="entry-{held.quarantine_id}"' in page
    assigned = acme.post(
        f"/ui/admin/quarantine/{held.quarantine_id}/assign", {"case_id": f"#{case_id}"}
    )
    assert assigned.status_code == 303
    assert f"case+%23{case_id}" in assigned.headers["location"]
    messages = api.get(f"/api/v1/cases/{case_id}/messages").json()
    assert [m["from_address"] for m in messages][-1] == "stranger@elsewhere.example"
    again = acme.post(f"/ui/admin/quarantine/{held.quarantine_id}/discard", {})
    assert again.status_code == 409  # released already: not held any more


def test_attachments_download_and_never_render(api: Api, acme: Browser) -> None:
    message = sample_message(subject="With a page")
    page_html = b"<html><script>alert(1)</script></html>"
    message.add_attachment(page_html, maintype="text", subtype="html", filename="page.html")
    result = api.deliver(api.channel(), message)
    case_page = acme.client.get(f"/ui/cases/{result.case_id}").text
    found = re.search(r'href="/ui/attachments/(\d+)">page.html<', case_page)
    assert found is not None, case_page
    download = acme.client.get(f"/ui/attachments/{found.group(1)}")
    assert download.status_code == 200
    assert download.content == page_html
    assert download.headers["content-type"] == "application/octet-stream"
    assert download.headers["content-disposition"] == "attachment; filename*=UTF-8''page.html"
    assert download.headers["x-content-type-options"] == "nosniff"
    assert acme.client.get("/ui/attachments/999").status_code == 404


def test_channel_settings_from_the_admin_page(api: Api, acme: Browser) -> None:
    channel_id = api.channel()
    assert f'id="channel-{channel_id}"' in acme.client.get("/ui/admin/channels").text
    saved = acme.post(
        f"/ui/admin/channels/{channel_id}",
        {
            "active": "1",
            "error_address": "Desk@Example.com",
            "purge_days": "7",
            "known_senders_only": "1",
            "structured_fields": "Order, Customer",
            "trusted_senders": "shop@example.com",
        },
    )
    assert saved.status_code == 303, saved.text
    shown = api.get("/api/v1/channels").json()[0]
    assert shown["error_address"] == "desk@example.com"
    assert shown["purge_days"] == 7
    rules = api.get(f"/api/v1/channels/{channel_id}/rules").json()
    assert rules["known_senders_only"] is True
    assert rules["structured_fields"] == ["Order", "Customer"]
    assert rules["trusted_senders"] == ["shop@example.com"]
    bad = acme.post(f"/ui/admin/channels/{channel_id}", {"error_address": "not an address"})
    assert bad.status_code == 422


WEB_ROUTERS = (web_routes.router, web_admin.router, web_wizard.router)
FORM = {
    "to": "x@acme.example", "text": "hi", "status": "closed", "case_id": "1",
    "channel_address": "", "error_address": "", "purge_days": "7", "email": "x@acme.example",
    "name": "x", "role": "global",
}  # fmt: skip


def test_every_page_and_form_refuses_another_companys_ids(
    api: Api, acme: Browser, globex: Globex
) -> None:
    """Every /ui route with an id in its path, read from the routers themselves (so pages
    added later are covered), tried by Acme's admin with Globex's ids."""
    ids: dict[str, object] = {**globex.ids, **_globex_message_ids(api, globex)}
    ids.update(action="discard", direction="incoming")
    tried = 0
    token = acme.csrf("/ui/cases")
    for router in WEB_ROUTERS:
        for route in router.routes:
            path = getattr(route, "path", "")
            if "{" not in path:
                continue
            url = re.sub(r"\{(\w+)\}", lambda m: str(ids[m.group(1)]), path)
            for method in sorted(getattr(route, "methods", ())):
                data = {**FORM, "csrf": token} if method == "POST" else None
                response = acme.client.request(method, url, data=data, follow_redirects=False)
                assert response.status_code in (403, 404), f"{method} {path}: {response.text}"
                assert "globex" not in response.text.lower(), f"{method} {path}"
                tried += 1
    assert tried >= 12  # as many as there were when this was written
    # And Globex's own admin reaches them: the ids were real.
    gus_case = globex.get(api, f"/api/v1/cases/{ids['case_id']}")
    assert gus_case.json()["status"] == "new"


def _globex_message_ids(api: Api, globex: Globex) -> dict[str, int]:
    message = sample_message(subject="globex attachment")
    message.add_attachment(b"globex data", maintype="application", subtype="octet-stream",
                           filename="globex.bin")  # fmt: skip
    result = api.deliver(globex.ids["channel_id"], message)
    listed = globex.get(api, f"/api/v1/cases/{result.case_id}/messages").json()
    return {"message_pk": listed[0]["id"], "attachment_id": listed[0]["attachments"][0]["id"]}


def test_sending_is_suspended_and_resumed_from_the_outbox_page(api: Api, acme: Browser) -> None:
    with api.db.write() as session:
        account = Account(
            company_id=1, role="global", name="Desk", email="desk@example.com",
            outgoing_active=True,
        )  # fmt: skip
        session.add(account)
        session.flush()
        account_id = account.id
    page = acme.client.get("/ui/admin/outbox").text
    assert "Suspend all sending" in page
    assert "Suspend Desk" in page
    assert acme.post("/ui/admin/outbox/suspension", {"on": "1"}).status_code == 303
    assert "All sending is suspended" in acme.client.get("/ui/admin/outbox").text
    acme.post("/ui/admin/outbox/suspension", {"on": "1", "account_id": str(account_id)})
    with api.db.read() as session:
        assert session.get_one(Installation, 1).outbox_suspended is True
        assert session.get_one(Account, account_id).sending_suspended is True
    acme.post("/ui/admin/outbox/suspension", {})
    assert "All sending is suspended" not in acme.client.get("/ui/admin/outbox").text
