"""Real mail servers for integration tests, on free loopback ports.

- ``TestPKI``: a throwaway CA (trustme), a certificate for localhost/127.0.0.1, the CA file.
- ``TokenIssuer``: OAuth2 access tokens and an RFC 7662 introspection endpoint.
- ``Dovecot``: IMAP (STARTTLS), IMAPS, POP3 (STLS), POP3S and LMTP; users, delivery,
  folders (``add_user``, ``deliver``, ``append``, ``create_folder``, ``count``, ``imap``).
- ``SmtpPeer``: an aiosmtpd submission server (``starttls``/``tls``/``plain``) with AUTH
  PLAIN/LOGIN/XOAUTH2 that records what it accepts.
- ``silent_listener``, ``unanswered_port``, ``closed_port``: a port that never speaks, one
  where connecting times out, one that refuses.

The pytest fixtures that start them live at the end of ``tests/integration/conftest.py``.
"""

from tests.mailservers.dovecot import DOMAIN, DOVECOT, Dovecot, MailUser
from tests.mailservers.dovecot_conf import DovecotPorts
from tests.mailservers.oauth import TokenIssuer
from tests.mailservers.pki import TestPKI
from tests.mailservers.silent import closed_port, silent_listener, unanswered_port
from tests.mailservers.smtppeer import (
    REFUSED_DOMAIN,
    PeerMode,
    ReceivedMessage,
    SmtpPeer,
)

__all__ = [
    "DOMAIN",
    "DOVECOT",
    "REFUSED_DOMAIN",
    "Dovecot",
    "DovecotPorts",
    "MailUser",
    "PeerMode",
    "ReceivedMessage",
    "SmtpPeer",
    "TestPKI",
    "TokenIssuer",
    "closed_port",
    "silent_listener",
    "unanswered_port",
]
