""" "Test incoming": can casemail log in to the account's IMAP or POP3 server and see its mail?

Synchronous (imapclient and poplib are blocking); the caller runs it in a thread. It never
changes the mailbox: no SELECT for writing, no flags, no DELE.
"""

from __future__ import annotations

from casemail.accounts.conntest_common import CheckFailed, Passed, finish, scrub, tls_context
from casemail.accounts.conntest_explain import reach
from casemail.accounts.conntest_imap import check_imap
from casemail.accounts.conntest_pop3 import check_pop3
from casemail.accounts.endpoint import Endpoint, TestOutcome


def test_incoming(endpoint: Endpoint) -> TestOutcome:
    """Connect with the endpoint's security and timeouts, log in, and for IMAP list the
    folders and count the messages of ``endpoint.folders``; for POP3, STAT and UIDL."""
    result: Passed | CheckFailed
    try:
        if endpoint.protocol not in ("imap", "pop3"):
            raise CheckFailed("protocol", f"{endpoint.protocol!r} is not an incoming protocol")
        context = tls_context(endpoint)
        reach(endpoint)
        check = check_imap if endpoint.protocol == "imap" else check_pop3
        result = check(endpoint, context)
    except CheckFailed as failed:
        result = failed
    except Exception as exc:  # noqa: BLE001 - a test reports, it does not crash the caller
        text = scrub(str(exc), endpoint.secret)
        result = CheckFailed(None, f"unexpected error: {type(exc).__name__}: {text}")
    return finish("incoming", endpoint, result)
