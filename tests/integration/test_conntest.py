""" "Test incoming" against a real Dovecot: OK on good settings, and for each bad setting the
field to fix and words that say what is wrong."""

from __future__ import annotations

import time
from dataclasses import replace

import pytest

from casemail.accounts import conntest
from casemail.accounts.endpoint import Endpoint, IncomingProtocol, Security, TestOutcome
from tests.mailservers import (
    Dovecot,
    MailUser,
    TokenIssuer,
    closed_port,
    silent_listener,
    unanswered_port,
)
from tests.support import sample_message

SECURITIES: list[Security] = ["none", "starttls", "tls"]
INCOMING: list[IncomingProtocol] = ["imap", "pop3"]


def incoming(
    server: Dovecot, user: MailUser, protocol: IncomingProtocol, security: Security
) -> Endpoint:
    ports = server.ports
    if protocol == "imap":
        port = ports.imaps if security == "tls" else ports.imap
    else:
        port = ports.pop3s if security == "tls" else ports.pop3
    return Endpoint(
        protocol=protocol,
        host=server.host,
        port=port,
        security=security,
        username=user.address,
        secret=user.password,
        ca_file=server.ca_file,
        connect_timeout=5,
        read_timeout=10,
    )


def failed(outcome: TestOutcome, field: str, *words: str) -> None:
    assert not outcome.ok, outcome
    assert outcome.direction == "incoming"
    assert outcome.field == field, outcome
    for word in words:
        assert word in outcome.message, outcome


@pytest.mark.parametrize("security", SECURITIES)
def test_imap_ok_counts_folders_without_touching_them(
    dovecot: Dovecot, mail_user: MailUser, security: Security
) -> None:
    dovecot.deliver(mail_user, sample_message())
    dovecot.deliver(mail_user, sample_message(subject="Second"))
    dovecot.create_folder(mail_user, "Support")
    dovecot.append(mail_user, "Support", sample_message())
    endpoint = replace(incoming(dovecot, mail_user, "imap", security), folders=("inbox", "Support"))

    outcome = conntest.test_incoming(endpoint)

    assert outcome.ok, outcome
    assert outcome.field is None
    assert outcome.details["counts"] == {"INBOX": 2, "Support": 1}
    assert set(outcome.details["folders"]) == {"INBOX", "Support"}
    assert "IMAP4REV1" in outcome.details["capabilities"]
    assert "casemail test Dovecot ready" in outcome.details["server_greeting"]
    assert (outcome.details["tls_version"] is None) == (security == "none")
    assert "INBOX: 2 messages; Support: 1 message" in outcome.message
    with dovecot.imap(mail_user) as client:
        client.select_folder("INBOX", readonly=True)
        assert len(client.search("UNSEEN")) == 2  # nothing was marked \Seen


@pytest.mark.parametrize("security", SECURITIES)
def test_pop3_ok_stat_and_uidl_leave_the_mail(
    dovecot: Dovecot, mail_user: MailUser, security: Security
) -> None:
    for _ in range(3):
        dovecot.deliver(mail_user, sample_message())

    outcome = conntest.test_incoming(incoming(dovecot, mail_user, "pop3", security))

    assert outcome.ok, outcome
    assert outcome.details["counts"] == {"INBOX": 3}
    assert outcome.details["uidl"] is True
    assert "3 messages in the mailbox; UIDL supported" in outcome.message
    assert dovecot.count(mail_user) == 3


@pytest.mark.parametrize("protocol", INCOMING)
def test_oauth2_access_token_logs_in_with_xoauth2(
    dovecot: Dovecot, mail_user: MailUser, oauth_tokens: TokenIssuer, protocol: IncomingProtocol
) -> None:
    token = oauth_tokens.issue(mail_user.address)
    endpoint = replace(incoming(dovecot, mail_user, protocol, "tls"), auth="oauth2", secret=token)

    assert conntest.test_incoming(endpoint).ok

    oauth_tokens.revoke(token)
    outcome = conntest.test_incoming(endpoint)
    failed(outcome, "auth", "refused the OAuth2 access token", "sign in")
    assert token not in repr(outcome)


@pytest.mark.parametrize("protocol", INCOMING)
def test_wrong_password_names_the_password(
    dovecot: Dovecot, mail_user: MailUser, protocol: IncomingProtocol
) -> None:
    endpoint = replace(incoming(dovecot, mail_user, protocol, "starttls"), secret="not-it")

    outcome = conntest.test_incoming(endpoint)

    failed(outcome, "password", mail_user.address, "Authentication failed")
    assert outcome.details["server_reply"]


def test_non_ascii_password_logs_in_over_sasl_plain(dovecot: Dovecot) -> None:
    user = dovecot.add_user(password="pässwörd-ünïcode")
    assert conntest.test_incoming(incoming(dovecot, user, "imap", "tls")).ok


def test_missing_folder_lists_the_folders_that_exist(dovecot: Dovecot, mail_user: MailUser) -> None:
    dovecot.create_folder(mail_user, "Support", "Archive/2024")
    endpoint = replace(incoming(dovecot, mail_user, "imap", "tls"), folders=("INBOX", "Sales"))

    outcome = conntest.test_incoming(endpoint)

    failed(outcome, "folders", "'Sales'", "INBOX", "Support", "Archive/2024")
    assert outcome.details["missing"] == ["Sales"]


@pytest.mark.parametrize("protocol", INCOMING)
def test_host_that_does_not_resolve(
    dovecot: Dovecot, mail_user: MailUser, protocol: IncomingProtocol
) -> None:
    endpoint = replace(incoming(dovecot, mail_user, protocol, "tls"), host="no-such-host.invalid")
    failed(conntest.test_incoming(endpoint), "host", "'no-such-host.invalid' does not resolve")


@pytest.mark.parametrize("protocol", INCOMING)
def test_closed_port(dovecot: Dovecot, mail_user: MailUser, protocol: IncomingProtocol) -> None:
    endpoint = replace(incoming(dovecot, mail_user, protocol, "tls"), port=closed_port())
    failed(conntest.test_incoming(endpoint), "port", "connection refused")


@pytest.mark.parametrize("protocol", INCOMING)
def test_tls_on_a_plain_text_port(
    dovecot: Dovecot, mail_user: MailUser, protocol: IncomingProtocol
) -> None:
    plain_port = incoming(dovecot, mail_user, protocol, "none").port
    endpoint = replace(incoming(dovecot, mail_user, protocol, "tls"), port=plain_port)
    failed(conntest.test_incoming(endpoint), "security", "answered in plain text")


@pytest.mark.parametrize(("protocol", "security"), [("imap", "none"), ("pop3", "starttls")])
def test_plain_text_on_a_tls_port_is_found_out_within_the_timeout(
    dovecot: Dovecot, mail_user: MailUser, protocol: IncomingProtocol, security: Security
) -> None:
    tls_port = incoming(dovecot, mail_user, protocol, "tls").port
    endpoint = replace(
        incoming(dovecot, mail_user, protocol, security), port=tls_port, connect_timeout=1
    )

    started = time.monotonic()
    outcome = conntest.test_incoming(endpoint)

    failed(outcome, "security", "expects TLS from the first byte", "set security to 'tls'")
    assert time.monotonic() - started < 3 * endpoint.connect_timeout + 1


@pytest.mark.parametrize("protocol", INCOMING)
def test_silent_server_times_out_on_the_port(
    dovecot: Dovecot, mail_user: MailUser, protocol: IncomingProtocol
) -> None:
    with silent_listener() as port:
        endpoint = replace(
            incoming(dovecot, mail_user, protocol, "none"), port=port, connect_timeout=0.5
        )
        started = time.monotonic()
        outcome = conntest.test_incoming(endpoint)
        elapsed = time.monotonic() - started

    failed(outcome, "port", "sent no greeting within 0.5 s")
    assert elapsed < 3 * endpoint.connect_timeout + 1


def test_connect_timeout_points_at_the_host(dovecot: Dovecot, mail_user: MailUser) -> None:
    with unanswered_port() as port:
        endpoint = replace(
            incoming(dovecot, mail_user, "imap", "tls"), port=port, connect_timeout=0.5
        )
        started = time.monotonic()
        outcome = conntest.test_incoming(endpoint)
        elapsed = time.monotonic() - started

    failed(outcome, "host", f"No answer from 127.0.0.1:{port} within 0.5 s", "firewall")
    assert elapsed < 2


@pytest.mark.parametrize(("protocol", "security"), [("imap", "tls"), ("pop3", "starttls")])
def test_untrusted_certificate(
    dovecot: Dovecot, mail_user: MailUser, protocol: IncomingProtocol, security: Security
) -> None:
    endpoint = replace(incoming(dovecot, mail_user, protocol, security), ca_file=None)

    outcome = conntest.test_incoming(endpoint)

    failed(outcome, "verify_tls", "certificate", "unable to get local issuer certificate")
    assert conntest.test_incoming(replace(endpoint, verify_tls=False)).ok


@pytest.mark.parametrize("protocol", INCOMING)
def test_starttls_not_offered_is_refused_not_downgraded(
    dovecot_without_tls: Dovecot, protocol: IncomingProtocol
) -> None:
    user = dovecot_without_tls.add_user()
    endpoint = incoming(dovecot_without_tls, user, protocol, "starttls")

    outcome = conntest.test_incoming(endpoint)

    failed(outcome, "security", "does not offer", "will not log in")
    assert conntest.test_incoming(replace(endpoint, security="none")).ok
