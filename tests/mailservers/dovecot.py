"""A real Dovecot (IMAP, IMAPS, POP3, POP3S, LMTP) for integration tests.

Started as ``dovecot -F -c <root>/dovecot.conf`` on free loopback ports, with passwd-file
users added while it runs (one passwd-file each), and stopped by its
PID. Test mail goes in through LMTP (INBOX) or IMAP APPEND (any folder).
"""

from __future__ import annotations

import grp
import os
import pwd
import secrets
import shutil
import signal
import smtplib
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from email.message import EmailMessage
from pathlib import Path

from imapclient import IMAPClient

from tests.conftest import free_port
from tests.mailservers.dovecot_conf import DovecotPorts, write_config
from tests.mailservers.oauth import TokenIssuer
from tests.mailservers.pki import TestPKI

DOVECOT = shutil.which("dovecot") or "/usr/sbin/dovecot"
DOMAIN = "mail.test"


@dataclass(frozen=True)
class MailUser:
    address: str  # also the login name
    password: str


class Dovecot:
    """One Dovecot instance in its own temporary directory. Use ``start()``/``stop()``."""

    host = "127.0.0.1"

    def __init__(self, pki: TestPKI, tokens: TokenIssuer, *, tls: bool = True) -> None:
        """``tls=False``: a server that offers no TLS at all (no STARTTLS, no STLS, and
        the ``imaps``/``pop3s`` ports are 0)."""
        # Not pytest's tmp_path: that is 0700, and Dovecot's users must traverse the path.
        self.root = Path(tempfile.mkdtemp(prefix="casemail-dovecot-"))
        self.root.chmod(0o755)
        self.pki = pki
        self.tokens = tokens
        self.tls = tls
        imap, pop3, lmtp = free_port(), free_port(), free_port()
        imaps, pop3s = (free_port(), free_port()) if tls else (0, 0)
        self.ports = DovecotPorts(imap=imap, imaps=imaps, pop3=pop3, pop3s=pop3s, lmtp=lmtp)
        self.users_dir = self.root / "users"
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def ca_file(self) -> Path:
        return self.pki.ca_file

    def start(self, timeout: float = 15) -> None:
        uid, gid = pwd.getpwnam("dovecot").pw_uid, grp.getgrnam("dovecot").gr_gid
        for sub in ("run", "state", "home", "users"):
            (self.root / sub).mkdir(mode=0o755)
        os.chown(self.root / "home", uid, gid)
        config = write_config(
            self.root,
            ports=self.ports,
            tls=self.tls,
            cert=self.pki.cert_file,
            key=self.pki.key_file,
            uid=uid,
            gid=gid,
            url=self.tokens.introspection_url,
        )
        with (self.root / "stderr.log").open("wb") as stderr:
            self._process = subprocess.Popen(
                [DOVECOT, "-F", "-c", str(config)], stdout=subprocess.DEVNULL, stderr=stderr
            )
        self._wait_listening(timeout)

    def _wait_listening(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        pending = set(vars(self.ports).values()) - {0}
        while pending:
            assert self._process is not None
            if self._process.poll() is not None:
                raise RuntimeError(f"dovecot exited ({self._process.returncode}):\n{self.logs()}")
            if time.monotonic() > deadline:
                raise RuntimeError(f"dovecot not listening on {pending}:\n{self.logs()}")
            for port in list(pending):
                with socket.socket() as probe:
                    if probe.connect_ex((self.host, port)) == 0:
                        pending.discard(port)
            time.sleep(0.05)

    def stop(self) -> None:
        process, self._process = self._process, None
        if process is not None and process.poll() is None:
            os.kill(process.pid, signal.SIGTERM)
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.kill(process.pid, signal.SIGKILL)
                process.wait(timeout=10)
        shutil.rmtree(self.root, ignore_errors=True)

    def logs(self) -> str:
        parts = [self.root / "stderr.log", self.root / "dovecot.log"]
        return "\n".join(p.read_text(errors="replace") for p in parts if p.exists())

    def add_user(self, local: str | None = None, password: str | None = None) -> MailUser:
        """A fresh user; the password must not contain ':' (the passwd-file separator)."""
        user = MailUser(
            address=f"{local or 'user-' + secrets.token_hex(4)}@{DOMAIN}",
            password=password or secrets.token_urlsafe(12),
        )
        assert ":" not in user.password
        assert ":" not in user.address
        passwd = self.users_dir / user.address
        passwd.write_text(f"{user.address}:{{PLAIN}}{user.password}::::::\n")
        passwd.chmod(0o644)
        return user

    def deliver(self, user: MailUser, message: EmailMessage | bytes) -> None:
        """Deliver to the user's INBOX through LMTP, as an MTA would."""
        raw = message if isinstance(message, bytes) else message.as_bytes()
        with smtplib.LMTP(self.host, self.ports.lmtp, timeout=10) as lmtp:
            lmtp.sendmail(f"sender@{DOMAIN}", [user.address], raw)

    @contextmanager
    def imap(self, user: MailUser) -> Iterator[IMAPClient]:
        """A logged-in IMAP session (plain text on loopback) for setting up and checking."""
        with IMAPClient(self.host, port=self.ports.imap, ssl=False, timeout=10) as client:
            client.login(user.address, user.password)
            yield client

    def append(self, user: MailUser, folder: str, message: EmailMessage | bytes) -> None:
        raw = message if isinstance(message, bytes) else message.as_bytes()
        with self.imap(user) as client:
            client.append(folder, raw)

    def append_many(
        self,
        user: MailUser,
        folder: str,
        messages: Iterable[EmailMessage | bytes],
        *,
        chunk: int = 500,
    ) -> int:
        """Many messages at once, in the order given (their UIDs follow it): MULTIAPPEND
        (RFC 3502) over one IMAP connection, ``chunk`` messages per command. Dovecot writes
        and indexes them itself, as for ``append``; thousands take about a second, where
        ``deliver`` (one LMTP session each) manages about a hundred. Returns the count."""
        raws = [m if isinstance(m, bytes) else m.as_bytes() for m in messages]
        with self.imap(user) as client:
            for start in range(0, len(raws), chunk):
                client.multiappend(folder, raws[start : start + chunk])
        return len(raws)

    def create_folder(self, user: MailUser, *names: str) -> None:
        with self.imap(user) as client:
            for name in names:
                client.create_folder(name)

    def folders(self, user: MailUser) -> list[str]:
        with self.imap(user) as client:
            return sorted(str(name) for _flags, _sep, name in client.list_folders())

    def count(self, user: MailUser, folder: str = "INBOX") -> int:
        with self.imap(user) as client:
            return int(client.folder_status(folder, ["MESSAGES"])[b"MESSAGES"])
