"""Certificates for the test mail servers, from a throwaway trustme CA.

The CA is written to a file (``ca_file``) so that tests can hand it to casemail exactly as
an admin would; without it, the servers' certificates are untrusted.
"""

from __future__ import annotations

import ssl
from datetime import UTC, datetime, timedelta
from pathlib import Path

import trustme

SERVER_NAMES = ("localhost", "127.0.0.1")


class TestPKI:
    """A CA, a server certificate for localhost/127.0.0.1, and files holding them."""

    __test__ = False

    def __init__(self, directory: Path) -> None:
        directory.mkdir(parents=True, exist_ok=True)
        directory.chmod(0o755)  # Dovecot reads the files as its own users
        self.directory = directory
        self.ca = trustme.CA()
        self.ca_file = directory / "ca.pem"
        self.ca.cert_pem.write_to_path(str(self.ca_file))
        self.cert_file, self.key_file = self._write_leaf("server", *SERVER_NAMES)

    def _write_leaf(self, stem: str, *names: str, expired: bool = False) -> tuple[Path, Path]:
        if expired:
            now = datetime.now(UTC)
            leaf = self.ca.issue_cert(
                *names, not_before=now - timedelta(days=30), not_after=now - timedelta(days=1)
            )
        else:
            leaf = self.ca.issue_cert(*names)
        cert_file, key_file = self.directory / f"{stem}.crt", self.directory / f"{stem}.key"
        cert_file.write_bytes(b"".join(blob.bytes() for blob in leaf.cert_chain_pems))
        leaf.private_key_pem.write_to_path(str(key_file))
        return cert_file, key_file

    def issue(self, stem: str, *names: str, expired: bool = False) -> tuple[Path, Path]:
        """Another certificate from the same CA, e.g. for a name the client does not use."""
        return self._write_leaf(stem, *names, expired=expired)

    def server_context(self, cert: tuple[Path, Path] | None = None) -> ssl.SSLContext:
        """A server-side context presenting ``cert`` (default: localhost/127.0.0.1)."""
        cert_file, key_file = cert or (self.cert_file, self.key_file)
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(str(cert_file), str(key_file))
        return context
