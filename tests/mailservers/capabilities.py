"""Dovecot users whose server looks older: a capability list of our choosing.

Dovecot lets a userdb field override a setting for one user; ``imap_capability`` is what
the IMAP process announces after login (fields in a passwd-file are separated by spaces,
so the capabilities are separated by tabs). The commands themselves keep working; a client
that checks the capabilities, as casemail does, sees a server without MOVE, IDLE or
UIDPLUS.
"""

from __future__ import annotations

from tests.mailservers.dovecot import Dovecot, MailUser


def add_user_with_capabilities(dovecot: Dovecot, *capabilities: str) -> MailUser:
    """A fresh user whose IMAP sessions announce exactly ``capabilities`` after login."""
    user = dovecot.add_user()
    passwd = dovecot.users_dir / user.address
    line = passwd.read_text().rstrip("\n")
    passwd.write_text(f"{line}userdb_imap_capability={chr(9).join(capabilities)}\n")
    return user
