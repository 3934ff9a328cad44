"""OAuth2 end to end, offline: casemail runs the authorization code flow (PKCE) against the
test authorization server (authlib, tests/mailservers/oauth.py), then fetches over IMAP and
sends over SMTP with XOAUTH2 — Dovecot's ``oauth2`` passdb and the SMTP peer both check the
access token by introspection at that server. Refresh, rotation, revocation, and the
security properties of the callback. On SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
import logging
import os
import secrets
import subprocess
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from cryptography.fernet import Fernet
from fastapi.testclient import TestClient
from sqlalchemy import select, update

from casemail.accounts.secrets import KeyRing, SecretsError
from casemail.accounts.service import reencrypt_all, stored_secrets
from casemail.api.app import create_app
from casemail.bootstrap import AppContext, build_context
from casemail.config import Settings
from casemail.db.models import Account, Case, OAuthClient, OAuthFlow, OutboxEntry
from casemail.db.types import utcnow
from casemail.mailboxes.runner import NotSyncable, sync_account
from casemail.oauth.clients import client_secret
from casemail.oauth.tokens import (
    ACCESS_TOKEN,
    REFRESH_TOKEN,
    ReauthorisationNeeded,
    TokenUnavailable,
    ensure_access_token,
)
from casemail.outbound import service as outbox
from casemail.outbound.sender import send_due
from casemail.outbound.service import CaseMail
from casemail.workers.mailboxes import poll_mailboxes
from tests.apisupport import admin_token
from tests.clisupport import CASEMAIL
from tests.mailservers import Dovecot, MailUser, SmtpPeer, TestPKI, TokenIssuer
from tests.support import sample_message

CALLBACK = "http://testserver/oauth/callback"
CLIENT_SECRET = "canary-oauth-client-secret"


@dataclass
class OAuthSetup:
    client: TestClient
    ctx: AppContext
    auth: dict[str, str]
    issuer: TokenIssuer
    client_id: str

    def post(self, path: str, **kwargs: Any) -> httpx.Response:
        response: httpx.Response = self.client.post(path, headers=self.auth, **kwargs)
        return response

    def get(self, path: str, **kwargs: Any) -> httpx.Response:
        response: httpx.Response = self.client.get(path, headers=self.auth, **kwargs)
        return response

    def account(self, account_id: int) -> dict[str, Any]:
        response = self.get(f"/api/v1/accounts/{account_id}")
        assert response.status_code == 200, response.text
        body: dict[str, Any] = response.json()
        return body

    def start(self, account_id: int) -> str:
        response = self.post(f"/api/v1/accounts/{account_id}/oauth/start")
        assert response.status_code == 200, response.text
        url: str = response.json()["authorization_url"]
        return url

    def browser(self, authorization_url: str, user: str) -> httpx.Response:
        """The mailbox owner signs in at the provider and consents; the provider redirects
        the browser to casemail's callback, which the browser then opens."""
        self.issuer.next_user = user
        at_provider = httpx.get(authorization_url, follow_redirects=False, timeout=10)
        assert at_provider.status_code == 302, at_provider.text
        location = at_provider.headers["location"]
        assert location.startswith(CALLBACK + "?")
        response: httpx.Response = self.client.get(location.removeprefix("http://testserver"))
        return response

    def connect(self, account_id: int, user: str) -> None:
        response = self.browser(self.start(account_id), user)
        assert response.status_code == 200, response.text
        assert "Connected" in response.text


@pytest.fixture
def setup(
    db_url: str, tmp_path: Path, mail_pki: TestPKI, oauth_tokens: TokenIssuer
) -> Iterator[OAuthSetup]:
    settings = Settings(
        home=tmp_path / "home",
        database_url=db_url,
        tls_ca_file=mail_pki.ca_file,
        public_url="http://testserver",
    )
    ctx = build_context(settings)
    with ctx.db.write() as session:
        token = admin_token(session)
    client_id = "casemail-" + secrets.token_hex(4)
    oauth_tokens.register_client(client_id, CLIENT_SECRET, [CALLBACK], "mail")
    oauth_tokens.access_token_lifetime = 3600
    with TestClient(create_app(ctx)) as client:
        auth = {"Authorization": f"Bearer {token}"}
        found = OAuthSetup(client, ctx, auth, oauth_tokens, client_id)
        response = found.post(
            "/api/v1/oauth/clients",
            json={
                "name": "Test provider",
                "provider": "generic",
                "client_id": client_id,
                "client_secret": CLIENT_SECRET,
                "authorize_url": oauth_tokens.authorize_url,
                "token_url": oauth_tokens.token_url,
                "scopes": ["mail"],
                "issuer": oauth_tokens.issuer,
                "jwks_url": oauth_tokens.jwks_url,
            },
        )
        assert response.status_code == 201, response.text
        assert CLIENT_SECRET not in response.text
        assert response.json()["redirect_uri"] == CALLBACK
        yield found
    oauth_tokens.next_user = None
    ctx.db.dispose()


def oauth_account(setup: OAuthSetup, dovecot: Dovecot, user: MailUser, peer: SmtpPeer) -> int:
    """An OAuth2 account on the Dovecot user, sending through the SMTP peer, with a channel."""
    document = {
        "role": "global",
        "is_default": True,
        "name": "Office (OAuth)",
        "email": user.address,
        "auth": "oauth2",
        "oauth_provider": "generic",
        "incoming": {
            "protocol": "imap",
            "host": "127.0.0.1",
            "port": dovecot.ports.imaps,
            "security": "tls",
            "connect_timeout": 5,
            "read_timeout": 10,
        },
        "outgoing": {"host": peer.host, "port": peer.port, "security": "starttls"},
    }
    return account_with_channel(setup, document)


def account_with_channel(setup: OAuthSetup, document: dict[str, Any]) -> int:
    response = setup.post("/api/v1/accounts", json=document)
    assert response.status_code == 201, response.text
    account_id: int = response.json()["id"]
    channel = setup.post(
        "/api/v1/channels",
        json={"address": f"in-{account_id}@example.com", "account_id": account_id},
    )
    assert channel.status_code == 201, channel.text
    return account_id


def password_account(setup: OAuthSetup, dovecot: Dovecot, user: MailUser) -> int:
    document = {
        "role": "global",
        "name": "Second mailbox",
        "email": user.address,
        "incoming": {
            "protocol": "imap",
            "host": "127.0.0.1",
            "port": dovecot.ports.imaps,
            "security": "tls",
            "password": user.password,
        },
    }
    return account_with_channel(setup, document)


def secrets_of(setup: OAuthSetup, account_id: int) -> dict[str, str]:
    with setup.ctx.db.read() as session:
        return stored_secrets(session.get_one(Account, account_id), setup.ctx.keys)


def cases(setup: OAuthSetup) -> list[str]:
    with setup.ctx.db.read() as session:
        return list(session.scalars(select(Case.subject).order_by(Case.id)))


def expire_now(setup: OAuthSetup, account_id: int, user: MailUser) -> None:
    """Time passes: the access token expires at the provider and by casemail's clock."""
    setup.issuer.expire_access_tokens(user.address)
    with setup.ctx.db.write() as session:
        session.execute(
            update(Account).where(Account.id == account_id).values(oauth_expires_at=utcnow())
        )


def test_connect_fetch_send_refresh_rotate_and_revoke(
    setup: OAuthSetup,
    dovecot: Dovecot,
    mail_user: MailUser,
    smtp_peer_factory: Any,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    peer = smtp_peer_factory("starttls")
    account_id = oauth_account(setup, dovecot, mail_user, peer)
    assert setup.account(account_id)["oauth"]["state"] == "not-connected"
    refused = setup.post(f"/api/v1/accounts/{account_id}/test-incoming").json()
    assert refused["ok"] is False
    assert refused["field"] == "auth"
    assert "must be connected again" in refused["message"]

    setup.connect(account_id, mail_user.address)
    status = setup.account(account_id)["oauth"]
    assert status["state"] == "connected"
    assert status["has_refresh_token"] is True
    assert status["error"] is None
    first = secrets_of(setup, account_id)
    assert setup.issuer.username_for(first[ACCESS_TOKEN]) == mail_user.address

    # Test incoming and outgoing log in with XOAUTH2 for real.
    incoming = setup.post(f"/api/v1/accounts/{account_id}/test-incoming").json()
    assert incoming["ok"] is True, incoming
    outgoing = setup.post(
        f"/api/v1/accounts/{account_id}/test-outgoing", json={"to": "check@example.net"}
    ).json()
    assert outgoing["ok"] is True, outgoing

    # Fetch: a message delivered to the mailbox becomes a case.
    dovecot.deliver(mail_user, sample_message(subject="Fetched with XOAUTH2"))
    assert sync_account(setup.ctx, account_id).stored == 1
    assert cases(setup) == ["Fetched with XOAUTH2"]

    # The access token expires: the next sync refreshes it first; the provider rotates the
    # refresh token and casemail keeps the new one (the old one is dead at the provider).
    refreshes = setup.issuer.refresh_count
    expire_now(setup, account_id, mail_user)
    dovecot.deliver(mail_user, sample_message(subject="After the refresh"))
    assert sync_account(setup.ctx, account_id).stored == 1
    assert setup.issuer.refresh_count == refreshes + 1
    second = secrets_of(setup, account_id)
    assert second[ACCESS_TOKEN] != first[ACCESS_TOKEN]
    assert second[REFRESH_TOKEN] != first[REFRESH_TOKEN]
    old_refresh = httpx.post(
        setup.issuer.token_url,
        data={
            "grant_type": "refresh_token",
            "refresh_token": first[REFRESH_TOKEN],
            "client_id": setup.client_id,
            "client_secret": CLIENT_SECRET,
        },
    )
    assert old_refresh.json()["error"] == "invalid_grant"

    # Send from the case over SMTP with XOAUTH2.
    with setup.ctx.db.read() as session:
        case_id = session.scalars(select(Case.id).order_by(Case.id)).first()
    assert case_id is not None
    with setup.ctx.db.write() as session:
        sent_id = outbox.send_from_case(
            session,
            case_id,
            CaseMail(to=("alice@customer.example",), text="On it."),
            give_up_after=timedelta(days=2),
        ).id
    asyncio.run(send_due(setup.ctx.db, setup.ctx.settings, setup.ctx.keys))
    with setup.ctx.db.read() as session:
        assert session.get_one(OutboxEntry, sent_id).state == "sent"
    delivered = [m for m in peer.received if m.rcpt_tos == ("alice@customer.example",)]
    assert [m.login for m in delivered] == [mail_user.address]  # authenticated by XOAUTH2

    # The user withdraws consent: the refresh fails, the account needs reauthorisation,
    # people are told, and a password account on the same server keeps syncing.
    other_user = dovecot.add_user()
    other = password_account(setup, dovecot, other_user)
    setup.issuer.revoke_user(mail_user.address)
    expire_now(setup, account_id, mail_user)
    dovecot.deliver(mail_user, sample_message(subject="Waits for the reconnect"))
    dovecot.deliver(other_user, sample_message(subject="Other mailbox still flows"))
    with pytest.raises(ReauthorisationNeeded, match="must be connected again"):
        sync_account(setup.ctx, account_id)
    assert sync_account(setup.ctx, other).stored == 1
    status = setup.account(account_id)["oauth"]
    assert status["state"] == "needs-reauthorisation"
    assert "invalid_grant" in status["error"]
    assert status["has_refresh_token"] is False
    health = setup.get(f"/api/v1/accounts/{account_id}/health").json()
    assert health["state"] == "error"
    assert "must be connected again" in health["last_error"]
    with setup.ctx.db.read() as session:
        notices = list(session.scalars(select(OutboxEntry).where(OutboxEntry.kind == "notice")))
    assert [n.subject for n in notices] == [f"casemail: connect {mail_user.address} again"]
    # A second failure tells no one again.
    with pytest.raises(ReauthorisationNeeded):
        sync_account(setup.ctx, account_id)
    with setup.ctx.db.read() as session:
        assert (
            len(list(session.scalars(select(OutboxEntry.id).where(OutboxEntry.kind == "notice"))))
            == 1
        )

    # Connecting again brings the mailbox back; the waiting message is fetched once.
    setup.connect(account_id, mail_user.address)
    assert sync_account(setup.ctx, account_id).stored == 1
    assert cases(setup).count("Waits for the reconnect") == 1

    # No token or client secret in any log line of casemail (or of the libraries it uses;
    # authlib's own records here come from the provider's side, the test server).
    ours = "\n".join(
        record.getMessage() for record in caplog.records if not record.name.startswith("authlib")
    )
    final = secrets_of(setup, account_id)
    for secret in (*first.values(), *second.values(), *final.values(), CLIENT_SECRET):
        assert secret not in ours


def test_callback_refuses_missing_wrong_replayed_and_expired_state(
    setup: OAuthSetup, dovecot: Dovecot, mail_user: MailUser, smtp_peer_factory: Any
) -> None:
    account_id = oauth_account(setup, dovecot, mail_user, smtp_peer_factory("starttls"))
    url = setup.start(account_id)
    setup.issuer.next_user = mail_user.address
    location = httpx.get(url, follow_redirects=False, timeout=10).headers["location"]
    query = parse_qs(urlsplit(location).query)
    code, state = query["code"][0], query["state"][0]

    missing = setup.client.get("/oauth/callback", params={"code": code})
    assert missing.status_code == 400
    assert "no state" in missing.text
    wrong = setup.client.get("/oauth/callback", params={"code": code, "state": state + "x"})
    assert wrong.status_code == 400
    assert "unknown or was already used" in wrong.text
    assert setup.account(account_id)["oauth"]["state"] == "not-connected"

    good = setup.client.get("/oauth/callback", params={"code": code, "state": state})
    assert good.status_code == 200
    assert good.headers["cache-control"] == "no-store"
    assert good.headers["referrer-policy"] == "no-referrer"
    replay = setup.client.get("/oauth/callback", params={"code": code, "state": state})
    assert replay.status_code == 400
    assert "already used" in replay.text

    # A flow left too long is refused even with its right state.
    url = setup.start(account_id)
    state = parse_qs(urlsplit(url).query)["state"][0]
    with setup.ctx.db.write() as session:
        session.execute(update(OAuthFlow).values(expires_at=utcnow() - timedelta(seconds=1)))
    late = setup.client.get("/oauth/callback", params={"code": "whatever", "state": state})
    assert late.status_code == 400
    assert "took longer than 10 minutes" in late.text


def test_a_wrong_pkce_verifier_is_refused_and_the_account_stays_unconnected(
    setup: OAuthSetup, dovecot: Dovecot, mail_user: MailUser, smtp_peer_factory: Any
) -> None:
    account_id = oauth_account(setup, dovecot, mail_user, smtp_peer_factory("starttls"))
    url = setup.start(account_id)
    # Someone swaps the verifier kept for this flow: the provider must refuse the code.
    with setup.ctx.db.write() as session:
        flow = session.scalars(select(OAuthFlow)).one()
        flow.secrets = setup.ctx.keys.encrypt(
            flow.id, {"code_verifier": secrets.token_urlsafe(64)}, table="oauth_flows"
        )
    response = setup.browser(url, mail_user.address)
    assert response.status_code == 400
    assert "invalid_grant" in response.text
    status = setup.account(account_id)["oauth"]
    assert status["state"] == "not-connected"
    assert "refused the code" in status["error"]


def test_a_redirect_uri_that_does_not_match_exactly_is_refused(
    setup: OAuthSetup, dovecot: Dovecot, mail_user: MailUser, smtp_peer_factory: Any
) -> None:
    account_id = oauth_account(setup, dovecot, mail_user, smtp_peer_factory("starttls"))
    # casemail's redirect URI differs from the registered one by a trailing slash.
    with setup.ctx.db.read() as session:
        client_row = session.get_one(Account, account_id)
        assert client_row.oauth_client_id is None  # found by provider
    response = setup.client.get("/api/v1/oauth/clients", headers=setup.auth)
    client_id = response.json()[0]["id"]
    changed = setup.client.patch(
        f"/api/v1/oauth/clients/{client_id}",
        headers=setup.auth,
        json={"redirect_uri": CALLBACK + "/"},
    )
    assert changed.status_code == 200, changed.text
    url = setup.start(account_id)
    setup.issuer.next_user = mail_user.address
    at_provider = httpx.get(url, follow_redirects=False, timeout=10)
    assert at_provider.status_code == 400
    assert "location" not in at_provider.headers  # RFC 6749 4.1.2.1: never redirect

    # And a flow begun before the redirect URI changed cannot be finished after.
    setup.client.patch(
        f"/api/v1/oauth/clients/{client_id}", headers=setup.auth, json={"redirect_uri": CALLBACK}
    )
    url = setup.start(account_id)
    setup.issuer.next_user = mail_user.address
    location = httpx.get(url, follow_redirects=False, timeout=10).headers["location"]
    setup.client.patch(
        f"/api/v1/oauth/clients/{client_id}",
        headers=setup.auth,
        json={"redirect_uri": CALLBACK + "/"},
    )
    late = setup.client.get(location.removeprefix("http://testserver"))
    assert late.status_code == 400
    assert "redirect address changed" in late.text


def test_denied_consent_is_recorded_and_changes_nothing_else(
    setup: OAuthSetup, dovecot: Dovecot, mail_user: MailUser, smtp_peer_factory: Any
) -> None:
    account_id = oauth_account(setup, dovecot, mail_user, smtp_peer_factory("starttls"))
    setup.issuer.consent_denied = True
    try:
        response = setup.browser(setup.start(account_id), mail_user.address)
    finally:
        setup.issuer.consent_denied = False
    assert response.status_code == 400
    assert "access_denied" in response.text
    status = setup.account(account_id)["oauth"]
    assert status["state"] == "not-connected"
    assert "access_denied" in status["error"]


def test_clients_api_validates_and_never_returns_the_secret(setup: OAuthSetup) -> None:
    listed = setup.get("/api/v1/oauth/clients")
    assert listed.status_code == 200
    assert CLIENT_SECRET not in listed.text
    assert listed.json()[0]["has_secret"] is True
    generic = setup.post(
        "/api/v1/oauth/clients",
        json={"name": "No endpoints", "provider": "generic", "client_id": "x"},
    )
    assert generic.status_code == 422
    assert "authorize_url and token_url" in generic.text
    plain_http = setup.post(
        "/api/v1/oauth/clients",
        json={
            "name": "Plain HTTP",
            "provider": "generic",
            "client_id": "x",
            "authorize_url": "http://login.example.com/authorize",
            "token_url": "https://login.example.com/token",
        },
    )
    assert plain_http.status_code == 422
    assert "https://" in plain_http.text
    microsoft = setup.post(
        "/api/v1/oauth/clients",
        json={
            "name": "Entra",
            "provider": "microsoft",
            "client_id": "abc",
            "tenant": "contoso.com",
        },
    )
    assert microsoft.status_code == 201, microsoft.text
    body = microsoft.json()
    assert body["token_url"] == "https://login.microsoftonline.com/contoso.com/oauth2/v2.0/token"
    assert "offline_access" in body["scopes"]
    assert body["has_secret"] is False
    duplicate = setup.post(
        "/api/v1/oauth/clients",
        json={"name": "Entra", "provider": "microsoft", "client_id": "abc"},
    )
    assert duplicate.status_code == 409


def test_concurrent_refreshes_of_one_account_use_the_refresh_token_once(
    setup: OAuthSetup, dovecot: Dovecot, mail_user: MailUser, smtp_peer_factory: Any
) -> None:
    """Two workers find the token expiring at the same moment: one refreshes, the other
    waits and finds it fresh. Unserialised, both would send the same refresh token and the
    rotating provider would answer one of them invalid_grant."""
    account_id = oauth_account(setup, dovecot, mail_user, smtp_peer_factory("starttls"))
    setup.connect(account_id, mail_user.address)
    expire_now(setup, account_id, mail_user)
    before = setup.issuer.refresh_count
    setup.issuer.token_delay = 0.5
    failures: list[BaseException] = []

    def worker() -> None:
        try:
            ensure_access_token(setup.ctx.db, setup.ctx.keys, account_id)
        except BaseException as exc:  # noqa: BLE001 - reported by the assertion below
            failures.append(exc)

    threads = [threading.Thread(target=worker) for _ in range(4)]
    try:
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=30)
    finally:
        setup.issuer.token_delay = 0.0
    assert failures == []
    assert setup.issuer.refresh_count == before + 1
    assert setup.account(account_id)["oauth"]["state"] == "connected"


@pytest.mark.postgresql
def test_refreshes_are_serialised_across_processes_on_postgresql(
    setup: OAuthSetup, dovecot: Dovecot, mail_user: MailUser, smtp_peer_factory: Any
) -> None:
    """Three `casemail oauth refresh` processes at once (each forces a refresh): the
    advisory lock makes them take turns, each with the refresh token the previous one
    stored, so the provider sees three good rotations and no invalid_grant."""
    if setup.ctx.db.dialect != "postgresql":
        pytest.skip("several processes share one database only on PostgreSQL")
    account_id = oauth_account(setup, dovecot, mail_user, smtp_peer_factory("starttls"))
    setup.connect(account_id, mail_user.address)
    before = setup.issuer.refresh_count
    setup.issuer.token_delay = 3.0  # longer than the processes' start-up spread
    env = {
        **os.environ,
        "CASEMAIL_HOME": str(setup.ctx.settings.home),
        "CASEMAIL_DATABASE_URL": setup.ctx.settings.resolved_database_url,
    }
    command = [str(CASEMAIL), "oauth", "refresh", str(account_id)]
    try:
        processes = [
            subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
            for _ in range(3)
        ]
        outputs = [process.communicate(timeout=60) for process in processes]
    finally:
        setup.issuer.token_delay = 0.0
    for process, (out, err) in zip(processes, outputs, strict=True):
        assert process.returncode == 0, err.decode()
        assert b"refreshed" in out
    assert setup.issuer.refresh_count == before + 3
    outcomes = [r["outcome"] for r in setup.issuer.token_requests[-3:]]
    assert outcomes == ["ok", "ok", "ok"]
    assert setup.account(account_id)["oauth"]["state"] == "connected"


def test_key_rotation_re_encrypts_client_secrets_and_flows_and_binds_them_to_their_table(
    setup: OAuthSetup, dovecot: Dovecot, mail_user: MailUser, smtp_peer_factory: Any
) -> None:
    account_id = oauth_account(setup, dovecot, mail_user, smtp_peer_factory("starttls"))
    setup.start(account_id)  # a flow in progress, with its encrypted verifier
    newer = KeyRing((Fernet.generate_key(), *setup.ctx.keys.keys), "rotated")
    with setup.ctx.db.write() as session:
        # One OAuth client and one flow; the account has no secrets before it is connected.
        assert reencrypt_all(session, newer) == 2
    only_new = KeyRing(newer.keys[:1], "new only")
    with setup.ctx.db.read() as session:
        client = session.scalars(select(OAuthClient)).one()
        assert client_secret(client, only_new) == CLIENT_SECRET
        flow = session.scalars(select(OAuthFlow)).one()
        assert only_new.decrypt(flow.id, flow.secrets or b"", table="oauth_flows")
        # The client's blob is refused where a row of another table with its id is expected.
        with pytest.raises(SecretsError, match="belong to another row"):
            only_new.decrypt(client.id, client.secrets or b"")


def test_switch_from_password_to_oauth_loses_nothing_and_fetches_nothing_twice(
    setup: OAuthSetup, dovecot: Dovecot, mail_user: MailUser, smtp_peer_factory: Any
) -> None:
    """Seed 002's migration: the OAuth account is added beside the password account of the
    same mailbox, connected, takes the mailbox over, is tested, becomes the default, and
    the old account is deactivated. Mail before, during and after the switch: each once."""
    peer = smtp_peer_factory("starttls")
    peer.add_login(mail_user.address, mail_user.password)
    incoming = {
        "protocol": "imap",
        "host": "127.0.0.1",
        "port": dovecot.ports.imaps,
        "security": "tls",
    }
    old_doc: dict[str, Any] = {
        "role": "global",
        "is_default": True,
        "name": "Office (password)",
        "email": mail_user.address,
        "incoming": {**incoming, "password": mail_user.password},
        "outgoing": {"host": peer.host, "port": peer.port, "security": "starttls"},
    }
    created = setup.post("/api/v1/accounts", json=old_doc)
    assert created.status_code == 201, created.text
    old = created.json()["id"]
    channel = setup.post(
        "/api/v1/channels", json={"address": "office@example.com", "account_id": old}
    )
    assert channel.status_code == 201, channel.text
    for number in (1, 2):
        dovecot.deliver(mail_user, sample_message(subject=f"Before the switch {number}"))
    assert sync_account(setup.ctx, old).stored == 2

    # The new account on the same mailbox; mail keeps arriving meanwhile.
    new_doc = {**old_doc, "name": "Office (OAuth)", "is_default": False, "auth": "oauth2"}
    new_doc["oauth_provider"] = "generic"
    new_doc["incoming"] = incoming
    created = setup.post("/api/v1/accounts", json=new_doc)
    assert created.status_code == 201, created.text
    new = created.json()["id"]
    setup.connect(new, mail_user.address)
    dovecot.deliver(mail_user, sample_message(subject="During the switch"))

    taken = setup.post(f"/api/v1/accounts/{new}/take-over", json={"from_account": old})
    assert taken.status_code == 200, taken.text
    assert taken.json()["folders"] == 1
    assert taken.json()["items"] == 2
    assert taken.json()["channels"] == 1
    again = setup.post(f"/api/v1/accounts/{new}/take-over", json={"from_account": old})
    assert again.status_code == 409  # it has a record of the mailbox now

    for direction, body in (("incoming", None), ("outgoing", {"to": "check@example.net"})):
        result = setup.post(f"/api/v1/accounts/{new}/test-{direction}", json=body).json()
        assert result["ok"] is True, result
    assert setup.post(f"/api/v1/accounts/{new}/default").status_code == 200
    assert setup.post(f"/api/v1/accounts/{old}/deactivate").status_code == 200

    dovecot.deliver(mail_user, sample_message(subject="After the switch"))
    assert sync_account(setup.ctx, new).stored == 2
    assert sorted(cases(setup)) == [
        "After the switch",
        "Before the switch 1",
        "Before the switch 2",
        "During the switch",
    ]
    with pytest.raises(NotSyncable):
        sync_account(setup.ctx, old)


def test_take_over_refuses_another_mailbox(
    setup: OAuthSetup, dovecot: Dovecot, mail_user: MailUser, smtp_peer_factory: Any
) -> None:
    first = password_account(setup, dovecot, mail_user)
    second = password_account(setup, dovecot, dovecot.add_user())
    refused = setup.post(f"/api/v1/accounts/{second}/take-over", json={"from_account": first})
    assert refused.status_code == 409
    assert "needs the same mailbox" in refused.json()["detail"]


def signin_setup(setup: OAuthSetup, dovecot: Dovecot, peer: SmtpPeer, email: str) -> int:
    """A casemail user with ``email``, and the client's servers for sign-in accounts."""
    user = setup.post("/api/v1/users", json={"name": "Mia Agent", "email": email})
    assert user.status_code == 201, user.text
    client_id = setup.get("/api/v1/oauth/clients").json()[0]["id"]
    servers = {
        "incoming": {
            "protocol": "imap",
            "host": "127.0.0.1",
            "port": dovecot.ports.imaps,
            "security": "tls",
        },
        "outgoing": {"host": peer.host, "port": peer.port, "security": "starttls"},
    }
    changed = setup.client.patch(
        f"/api/v1/oauth/clients/{client_id}", headers=setup.auth, json={"mail_settings": servers}
    )
    assert changed.status_code == 200, changed.text
    return int(client_id)


def sign_in(setup: OAuthSetup, client_id: int, user: str) -> httpx.Response:
    """The user opens casemail's sign-in link: to the provider, and back."""
    started = setup.client.get(f"/oauth/signin/{client_id}", follow_redirects=False)
    assert started.status_code == 303, started.text
    query = parse_qs(urlsplit(started.headers["location"]).query)
    assert query["scope"][0].split()[:3] == ["openid", "email", "profile"]
    assert query["nonce"][0]
    return setup.browser(started.headers["location"], user)


def personal_accounts(setup: OAuthSetup) -> list[dict[str, Any]]:
    listed = setup.get("/api/v1/accounts").json()
    return [a for a in listed if a["role"] == "personal"]


def test_signing_in_with_openid_connect_makes_the_users_mailbox_work(
    setup: OAuthSetup, dovecot: Dovecot, mail_user: MailUser, smtp_peer_factory: Any
) -> None:
    """Seed 000: sign in with the provider, grant the mail scopes, and the personal account
    exists and fetches, with no further setup; signing in again updates it."""
    client_id = signin_setup(setup, dovecot, smtp_peer_factory("starttls"), mail_user.address)
    setup.issuer.set_user(mail_user.address, name="Mia Agent")
    signin_page = setup.client.get("/ui/signin").text
    assert f'href="/oauth/signin/{client_id}"' in signin_page  # "Sign in with …"
    response = sign_in(setup, client_id, mail_user.address)
    assert response.status_code == 200, response.text
    # Signed in to the web app as well: the callback's session opens the case list.
    assert response.url.path == "/ui/cases"
    assert "Sign out" in response.text
    [account] = personal_accounts(setup)
    assert account["email"] == mail_user.address
    assert account["is_default"] is True
    assert account["oauth"]["state"] == "connected"
    incoming = setup.post(f"/api/v1/accounts/{account['id']}/test-incoming").json()
    assert incoming["ok"] is True, incoming

    again = sign_in(setup, client_id, mail_user.address)
    assert again.status_code == 200, again.text
    assert [a["id"] for a in personal_accounts(setup)] == [account["id"]]


@pytest.mark.parametrize("trouble", ["not-a-user", "rogue-key", "wrong-audience", "nonce"])
def test_sign_in_is_refused_without_a_user_or_a_trustworthy_id_token(
    setup: OAuthSetup,
    dovecot: Dovecot,
    mail_user: MailUser,
    smtp_peer_factory: Any,
    trouble: str,
) -> None:
    client_id = signin_setup(setup, dovecot, smtp_peer_factory("starttls"), mail_user.address)
    who = mail_user.address if trouble != "not-a-user" else dovecot.add_user().address
    setup.issuer.sign_with_rogue_key = trouble == "rogue-key"
    setup.issuer.id_token_audience_override = (
        "someone-else" if trouble == "wrong-audience" else None
    )
    try:
        started = setup.client.get(f"/oauth/signin/{client_id}", follow_redirects=False)
        if trouble == "nonce":
            # The nonce kept for the flow is not the one the provider puts in the token.
            with setup.ctx.db.write() as session:
                flow = session.scalars(select(OAuthFlow)).one()
                hidden = setup.ctx.keys.decrypt(flow.id, flow.secrets or b"", table="oauth_flows")
                hidden["nonce"] = "another-nonce"
                flow.secrets = setup.ctx.keys.encrypt(flow.id, hidden, table="oauth_flows")
        response = setup.browser(started.headers["location"], who)
    finally:
        setup.issuer.sign_with_rogue_key = False
        setup.issuer.id_token_audience_override = None
    assert response.status_code == 400, response.text
    expected = {
        "not-a-user": "has no active user with that address",
        "rogue-key": "signature does not check out",
        "wrong-audience": "the ID token was refused",
        "nonce": "the ID token was refused",
    }[trouble]
    assert expected in response.text
    assert personal_accounts(setup) == []


def test_an_idle_watcher_gets_a_fresh_token_before_the_old_one_expires(
    setup: OAuthSetup, dovecot: Dovecot, mail_user: MailUser, smtp_peer_factory: Any
) -> None:
    """The worker keeps an IDLE session per mailbox for hours; the access token lasts one.
    Before it expires the worker refreshes it and restarts the watcher with the new one, so
    mail keeps arriving, and a token the provider no longer takes is never tried."""
    account_id = oauth_account(setup, dovecot, mail_user, smtp_peer_factory("starttls"))
    # Tokens that live 12 s: refreshed a quarter of their lifetime before they expire.
    setup.issuer.access_token_lifetime = 12
    setup.connect(account_id, mail_user.address)
    refreshes = setup.issuer.refresh_count
    first_token = secrets_of(setup, account_id)[ACCESS_TOKEN]

    async def scenario() -> None:
        stop = asyncio.Event()
        task = asyncio.create_task(poll_mailboxes(setup.ctx, stop))
        try:
            dovecot.deliver(mail_user, sample_message(subject="Before the refresh"))
            await _until(lambda: "Before the refresh" in cases(setup), 8)
            assert setup.issuer.refresh_count == refreshes  # the first token still does
            await _until(lambda: setup.issuer.refresh_count > refreshes, 15)
            setup.issuer.revoke(first_token)  # as if it had expired at the provider
            dovecot.deliver(mail_user, sample_message(subject="After the refresh"))
            await _until(lambda: "After the refresh" in cases(setup), 15)
        finally:
            stop.set()
            await asyncio.wait_for(task, 15)

    asyncio.run(scenario())
    health = setup.get(f"/api/v1/accounts/{account_id}/health").json()
    assert health["state"] == "ok", health
    assert health["last_error"] is None


async def _until(check: Any, seconds: float) -> None:
    deadline = asyncio.get_running_loop().time() + seconds
    while not await asyncio.to_thread(check):
        assert asyncio.get_running_loop().time() < deadline, f"not within {seconds} s"
        await asyncio.sleep(0.05)


def test_a_refused_client_secret_is_fixed_by_the_admin_without_anyone_reconnecting(
    setup: OAuthSetup, dovecot: Dovecot, mail_user: MailUser, smtp_peer_factory: Any
) -> None:
    """The app's secret expires at the provider: refreshes get invalid_client. The account
    says what to fix, the admins are told once, and the tokens are kept; once the admin
    replaces the secret, the account works again with no one signing in."""
    account_id = oauth_account(setup, dovecot, mail_user, smtp_peer_factory("starttls"))
    setup.connect(account_id, mail_user.address)
    new_secret = "canary-rotated-client-secret"
    setup.issuer.register_client(setup.client_id, new_secret, [CALLBACK], "mail")
    expire_now(setup, account_id, mail_user)
    for _ in range(2):
        with pytest.raises(TokenUnavailable, match="refused the OAuth app 'Test provider'"):
            sync_account(setup.ctx, account_id)
    status = setup.account(account_id)["oauth"]
    assert status["state"] == "client-rejected"
    assert status["has_refresh_token"] is True  # the grant is not lost
    assert "oauth client update" in status["error"]
    with setup.ctx.db.read() as session:
        subjects = list(session.scalars(select(OutboxEntry.subject)))
    assert subjects == ["casemail: the OAuth app Test provider was refused"]

    client_id = setup.get("/api/v1/oauth/clients").json()[0]["id"]
    fixed = setup.client.patch(
        f"/api/v1/oauth/clients/{client_id}", headers=setup.auth, json={"client_secret": new_secret}
    )
    assert fixed.status_code == 200, fixed.text
    assert setup.account(account_id)["oauth"]["state"] == "connected"
    dovecot.deliver(mail_user, sample_message(subject="After the new secret"))
    assert sync_account(setup.ctx, account_id).stored == 1
    assert setup.account(account_id)["oauth"]["error"] is None
