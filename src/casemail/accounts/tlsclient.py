"""TLS for casemail as a client of mail servers (IMAP, POP3, SMTP).

One place builds the client context so that every protocol verifies certificates the same
way: the system's trust store plus an optional CA file, TLS 1.2 or later, host name checked
(RFC 6125 as implemented by OpenSSL). Verification is turned off only when the admin chose
``verify_tls = false`` for an account.
"""

from __future__ import annotations

import functools
import ssl
from pathlib import Path


def client_tls_context(*, verify: bool, ca_file: Path | None) -> ssl.SSLContext:
    """A context for connecting to a mail server.

    ``verify=True``: the certificate must chain to the system trust store or to ``ca_file``
    and name the host connected to. ``verify=False``: any certificate is accepted (the
    connection is still encrypted, but not authenticated).

    Shared, not built per connection: each context holds its own copy of the system trust
    store (about 150 certificates), which a worker watching a thousand mailboxes would
    otherwise hold a thousand times. Contexts are safe to share between threads; a
    changed ``ca_file`` (another modification time) gets a new one.
    """
    stamp = ca_file.stat().st_mtime_ns if ca_file is not None else None
    return _shared_context(verify, ca_file, stamp)


@functools.lru_cache(maxsize=16)
def _shared_context(verify: bool, ca_file: Path | None, _stamp: int | None) -> ssl.SSLContext:
    context = ssl.create_default_context(ssl.Purpose.SERVER_AUTH)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    if ca_file is not None:
        context.load_verify_locations(cafile=str(ca_file))
    if not verify:
        # check_hostname must be off before verify_mode may be lowered.
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    return context
