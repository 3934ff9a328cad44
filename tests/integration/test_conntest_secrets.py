"""The password never shows: not in an outcome, not in any log record, whatever happens."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import replace

import pytest

from casemail.accounts import conntest
from casemail.accounts.endpoint import Endpoint, TestOutcome
from tests.mailservers import Dovecot, SmtpPeer, closed_port

CANARY = "canary-Pw-7f3a9e51"


def _outcomes(dovecot: Dovecot, peer: SmtpPeer) -> list[TestOutcome]:
    user = dovecot.add_user(password=CANARY)
    peer.add_login(user.address, CANARY)
    imap = Endpoint(
        protocol="imap",
        host=dovecot.host,
        port=dovecot.ports.imap,
        security="starttls",
        username=user.address,
        secret=CANARY,
        ca_file=dovecot.ca_file,
        connect_timeout=5,
    )
    pop3 = replace(imap, protocol="pop3", port=dovecot.ports.pop3)
    smtp = replace(imap, protocol="smtp", port=peer.port)
    incoming = [
        imap,
        pop3,
        replace(imap, username="someone-else@mail.test"),  # refused login
        replace(pop3, username="someone-else@mail.test"),
        replace(imap, folders=("Nope",)),  # missing folder
        replace(imap, ca_file=None),  # untrusted certificate
        replace(imap, port=closed_port()),
    ]
    outgoing = [smtp, replace(smtp, username="someone-else@mail.test")]
    results = [conntest.test_incoming(e) for e in incoming]
    for endpoint in outgoing:
        coro = conntest.test_outgoing(endpoint, sender=user.address, to="bob@customer.test")
        results.append(asyncio.run(coro))
    return results


def test_password_appears_in_no_outcome_and_no_log_record(
    dovecot: Dovecot,
    smtp_peer_factory: Callable[..., SmtpPeer],
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)

    outcomes = _outcomes(dovecot, smtp_peer_factory("starttls"))

    assert [o.ok for o in outcomes] == [True, True] + [False] * 5 + [True, False]
    for outcome in outcomes:
        assert CANARY not in repr(outcome)
    assert caplog.records, "the tests log (at DEBUG, imapclient logs every command)"
    for record in caplog.records:
        assert CANARY not in record.getMessage(), record
        assert CANARY not in repr(record.args), record
