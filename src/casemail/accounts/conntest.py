"""Connection tests of a mail account: "test incoming" (IMAP or POP3) and "test outgoing"
(SMTP, sending one test message). Each returns a TestOutcome in plain words that names the
account field to fix; neither ever raises for a server's failure, nor shows the secret."""

from __future__ import annotations

from casemail.accounts.conntest_incoming import test_incoming
from casemail.accounts.conntest_outgoing import test_outgoing

__all__ = ["test_incoming", "test_outgoing"]
