"""Real mail servers for integration tests, on free loopback ports.

- ``TestPKI``: a throwaway CA (trustme), a certificate for localhost/127.0.0.1, the CA file.
- ``TokenIssuer``: OAuth2 access tokens and an RFC 7662 introspection endpoint.
- ``Dovecot``: IMAP (STARTTLS), IMAPS, POP3 (STLS), POP3S and LMTP; users, delivery,
  folders (``add_user``, ``deliver``, ``append``, ``create_folder``, ``count``, ``imap``).
- ``SmtpPeer``: an aiosmtpd submission server (``starttls``/``tls``/``plain``) with AUTH
  PLAIN/LOGIN/XOAUTH2 that records what it accepts.
- ``silent_listener``, ``unanswered_port``, ``closed_port``: a port that never speaks, one
  where connecting times out, one that refuses.
- ``CutProxy``: a TCP proxy that cuts the connection on a command, or answers some commands
  with ``-ERR`` itself (a server dropping the link; a POP3 server without UIDL).
- ``DropProxy``: a TCP proxy that drops a connection after N bytes from the server, under
  TLS too (a link lost in the middle of an IMAP FETCH), or all connections at once.
- ``add_user_with_capabilities``: a Dovecot user whose IMAP server announces only the
  capabilities given (no MOVE, no IDLE, no UIDPLUS).

The pytest fixtures that start them live at the end of ``tests/integration/conftest.py``.
"""

from tests.mailservers.capabilities import add_user_with_capabilities
from tests.mailservers.cutproxy import CutProxy
from tests.mailservers.dovecot import DOMAIN, DOVECOT, Dovecot, MailUser
from tests.mailservers.dovecot_conf import DovecotPorts
from tests.mailservers.dropproxy import DropProxy
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
    "CutProxy",
    "Dovecot",
    "DovecotPorts",
    "DropProxy",
    "MailUser",
    "PeerMode",
    "ReceivedMessage",
    "SmtpPeer",
    "TestPKI",
    "TokenIssuer",
    "add_user_with_capabilities",
    "closed_port",
    "silent_listener",
    "unanswered_port",
]
