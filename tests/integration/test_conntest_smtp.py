""" "Test outgoing" against a real SMTP server (aiosmtpd): a test message goes out with the
account's TLS and login, and each refusal names the field to fix."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import replace
from email import message_from_bytes, policy

import pytest

from casemail.accounts import conntest
from casemail.accounts.endpoint import Endpoint, Security, TestOutcome
from tests.mailservers import (
    REFUSED_DOMAIN,
    PeerMode,
    SmtpPeer,
    TestPKI,
    TokenIssuer,
    closed_port,
    silent_listener,
)

PeerFactory = Callable[..., SmtpPeer]
SENDER = "alice@mail.test"
TO = "bob@customer.test"
MODES: dict[Security, PeerMode] = {"none": "plain", "starttls": "starttls", "tls": "tls"}


def outgoing(peer: SmtpPeer, security: Security, *, password: str = "s3cret") -> Endpoint:
    peer.add_login(SENDER, password)
    return Endpoint(
        protocol="smtp",
        host=peer.host,
        port=peer.port,
        security=security,
        username=SENDER,
        secret=password,
        ca_file=peer.pki.ca_file,
        connect_timeout=5,
        read_timeout=10,
    )


def send(endpoint: Endpoint, *, sender: str = SENDER, to: str = TO) -> TestOutcome:
    return asyncio.run(conntest.test_outgoing(endpoint, sender=sender, to=to))


def failed(outcome: TestOutcome, field: str, *words: str) -> None:
    assert not outcome.ok, outcome
    assert outcome.direction == "outgoing"
    assert outcome.field == field, outcome
    for word in words:
        assert word in outcome.message, outcome


@pytest.mark.parametrize("security", list(MODES))
def test_sends_a_test_message_with_auth(smtp_peer_factory: PeerFactory, security: Security) -> None:
    peer = smtp_peer_factory(MODES[security])

    outcome = send(outgoing(peer, security))

    assert outcome.ok, outcome
    assert outcome.details["reply_code"] == 250
    assert "250 2.0.0 Ok: queued as TEST0001" in outcome.message
    [received] = peer.received
    assert (received.mail_from, received.rcpt_tos, received.login) == (SENDER, (TO,), SENDER)
    message = message_from_bytes(received.data, policy=policy.default)
    assert message["Subject"] == "casemail test message"
    assert message["Auto-Submitted"] == "auto-generated"
    assert message["Message-ID"] == outcome.details["message_id"]
    assert message["Date"]


def test_xoauth2_with_an_access_token(
    smtp_peer_factory: PeerFactory, oauth_tokens: TokenIssuer
) -> None:
    peer = smtp_peer_factory("tls")
    token = oauth_tokens.issue(SENDER)
    endpoint = replace(outgoing(peer, "tls"), auth="oauth2", secret=token)

    assert send(endpoint).ok
    oauth_tokens.revoke(token)
    failed(send(endpoint), "auth", "refused the OAuth2 access token", "535")


def test_wrong_password(smtp_peer_factory: PeerFactory) -> None:
    endpoint = replace(outgoing(smtp_peer_factory("starttls"), "starttls"), secret="not-it")
    failed(send(endpoint), "password", SENDER, "535 5.7.8 Authentication credentials invalid")


def test_recipient_refused(smtp_peer_factory: PeerFactory) -> None:
    outcome = send(outgoing(smtp_peer_factory("tls"), "tls"), to=f"nobody@{REFUSED_DOMAIN}")
    failed(outcome, "to", f"nobody@{REFUSED_DOMAIN}", "550 5.1.1")


def test_sender_refused(smtp_peer_factory: PeerFactory) -> None:
    peer = smtp_peer_factory("tls")
    peer.refuse_sender(SENDER)
    failed(send(outgoing(peer, "tls")), "from_address", SENDER, "553 5.7.1")


def test_no_auth_without_tls_says_use_tls(smtp_peer_factory: PeerFactory) -> None:
    """The STARTTLS peer offers AUTH only after TLS (RFC 4954 section 4)."""
    endpoint = outgoing(smtp_peer_factory("starttls"), "none")
    failed(send(endpoint), "security", "offers no login (AUTH) without TLS")
    assert send(replace(endpoint, auth_required=False)).ok


def test_starttls_not_offered_is_refused_not_downgraded(smtp_peer_factory: PeerFactory) -> None:
    peer = smtp_peer_factory("plain")
    failed(send(outgoing(peer, "starttls")), "security", "does not offer STARTTLS")
    assert peer.received == []


def test_host_that_does_not_resolve(smtp_peer_factory: PeerFactory) -> None:
    endpoint = replace(outgoing(smtp_peer_factory("tls"), "tls"), host="no-such-host.invalid")
    failed(send(endpoint), "host", "does not resolve")


def test_closed_port(smtp_peer_factory: PeerFactory) -> None:
    endpoint = replace(outgoing(smtp_peer_factory("tls"), "tls"), port=closed_port())
    failed(send(endpoint), "port", "connection refused", "465")


def test_tls_on_a_plain_text_port(smtp_peer_factory: PeerFactory) -> None:
    endpoint = replace(outgoing(smtp_peer_factory("starttls"), "starttls"), security="tls")
    failed(send(endpoint), "security", "answered in plain text")


def test_plain_text_on_a_tls_port(smtp_peer_factory: PeerFactory) -> None:
    endpoint = outgoing(smtp_peer_factory("tls"), "starttls")
    endpoint = replace(endpoint, connect_timeout=1)
    started = time.monotonic()
    failed(send(endpoint), "security", "expects TLS from the first byte")
    assert time.monotonic() - started < 3 * endpoint.connect_timeout + 1


def test_silent_server(smtp_peer_factory: PeerFactory) -> None:
    endpoint = outgoing(smtp_peer_factory("tls"), "tls")
    with silent_listener() as port:
        endpoint = replace(endpoint, port=port, connect_timeout=0.5)
        started = time.monotonic()
        outcome = send(endpoint)
        elapsed = time.monotonic() - started
    failed(outcome, "port", "no TLS handshake or greeting within 0.5 s")
    assert elapsed < 3 * endpoint.connect_timeout + 1


def test_untrusted_certificate(smtp_peer_factory: PeerFactory) -> None:
    endpoint = replace(outgoing(smtp_peer_factory("tls"), "tls"), ca_file=None)
    failed(send(endpoint), "verify_tls", "unable to get local issuer certificate")
    assert send(replace(endpoint, verify_tls=False)).ok


def test_certificate_for_another_host(smtp_peer_factory: PeerFactory, mail_pki: TestPKI) -> None:
    cert = mail_pki.issue("elsewhere", "mail.elsewhere.test")
    endpoint = outgoing(smtp_peer_factory("starttls", cert=cert), "starttls")
    failed(send(replace(endpoint, host="localhost")), "verify_tls", "Hostname mismatch")
    failed(send(endpoint), "verify_tls", "IP address mismatch")
