"""Mailbox workers in the real processes: ``casemail serve`` (API and workers) and
``casemail worker`` (workers alone), fetching from a real Dovecot.

Everything goes through the outside: accounts and channels are created with the REST API,
mail is delivered by LMTP or APPEND, cases and account health are read back from the API,
and the link to the mail server is broken by a proxy in between. The times measured run
from the start of the delivery to the moment the case is listed by the API.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import free_port
from tests.e2e.linkproxy import LinkProxy
from tests.imapsupport import mailbox_account_doc
from tests.mailservers import (
    DOVECOT,
    Dovecot,
    MailUser,
    TestPKI,
    TokenIssuer,
    add_user_with_capabilities,
)
from tests.support import sample_message

pytestmark = pytest.mark.e2e

CASEMAIL = str(Path(sys.executable).parent / "casemail")
# ``casemail`` with IDLE restarted every few seconds instead of every 25 minutes: the same
# entry point, with the default the workers read at their start made short.
SHORT_IDLE = (
    "import sys; from casemail.mailboxes import imap_idle; "
    "imap_idle.IDLE_RESTART_SECONDS = float(sys.argv.pop(1)); "
    "from casemail.cli.main import main; sys.argv[0] = 'casemail'; main()"
)
REQUIRED_LATENCY = 2.0  # issue 4: a delivered message appears as a case within 2 seconds
LATENCIES: list[tuple[str, float]] = []  # printed at the end of the module (pytest -s)


# --- A Dovecot of this module's own --------------------------------------------------------


@pytest.fixture(scope="module")
def dovecot(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Dovecot]:
    yield from own_dovecot(tmp_path_factory)


def own_dovecot(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Dovecot]:
    """A Dovecot for one test module, stopped after it."""
    if not Path(DOVECOT).exists():
        pytest.skip(f"Dovecot tests skipped: {DOVECOT} not found (run scripts/install --test)")
    tokens = TokenIssuer()
    tokens.start()
    server = Dovecot(TestPKI(tmp_path_factory.mktemp("mail-pki")), tokens)
    try:
        server.start()
        yield server
    finally:
        server.stop()
        tokens.stop()


@pytest.fixture(scope="module", autouse=True)
def report_latencies() -> Iterator[None]:
    yield
    if LATENCIES:
        print("\ndelivery -> case latencies:")
        for what, seconds in LATENCIES:
            print(f"  {seconds:6.3f} s  {what}")


# --- The casemail processes ------------------------------------------------------------------


@dataclass
class Process:
    name: str
    popen: subprocess.Popen[bytes]
    log: Path

    def alive(self) -> bool:
        return self.popen.poll() is None

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 30) -> tuple[int, float]:
        """Exit code and seconds from the signal to the exit."""
        start = time.monotonic()
        self.popen.send_signal(sig)
        try:
            code = self.popen.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.popen.kill()
            self.popen.wait(timeout=10)
            raise AssertionError(
                f"{self.name} still running {timeout} s after {signal.Signals(sig).name}:\n"
                + self.log.read_text()
            ) from None
        return code, time.monotonic() - start


@dataclass
class Casemail:
    """One installation (home directory and database) and the processes started on it."""

    env: dict[str, str]
    tmp: Path
    http_port: int = 0
    token: str = field(default="", repr=False)
    processes: list[Process] = field(default_factory=list)

    def cli(self, *args: str) -> str:
        result = subprocess.run(
            [CASEMAIL, *args], env=self.env, capture_output=True, text=True, timeout=60
        )
        assert result.returncode == 0, result.stdout + result.stderr
        return result.stdout

    def _spawn(self, name: str, args: list[str], idle_seconds: float | None) -> Process:
        command = [CASEMAIL, *args]
        if idle_seconds is not None:
            command = [sys.executable, "-c", SHORT_IDLE, str(idle_seconds), *args]
        log = self.tmp / f"{name}-{len(self.processes)}.log"
        with log.open("wb") as out:
            popen = subprocess.Popen(command, env=self.env, stdout=out, stderr=subprocess.STDOUT)
        process = Process(name, popen, log)
        self.processes.append(process)
        return process

    def serve(self, *args: str, idle_seconds: float | None = None) -> Process:
        self.http_port = free_port()
        args = ("--http-port", str(self.http_port), "--smtp-port", str(free_port()), *args)
        process = self._spawn("serve", ["serve", *args], idle_seconds)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            assert process.alive(), process.log.read_text()
            try:
                if httpx.get(f"{self.base}/healthz", timeout=1).status_code == 200:
                    return process
            except httpx.HTTPError:
                pass
            time.sleep(0.05)
        raise AssertionError("casemail serve did not answer /healthz:\n" + process.log.read_text())

    def worker(self, idle_seconds: float | None = None) -> Process:
        return self._spawn("worker", ["worker"], idle_seconds)

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.http_port}"

    def request(self, method: str, path: str, expect: int = 200, **kwargs: Any) -> Any:
        headers = {"Authorization": f"Bearer {self.token}"}
        response = httpx.request(
            method, f"{self.base}{path}", headers=headers, timeout=10, **kwargs
        )
        assert response.status_code == expect, response.text
        return response.json() if response.content else None

    def logs(self) -> str:
        return "\n".join(f"--- {p.log.name}\n{p.log.read_text()}" for p in self.processes)

    # --- what an admin does through the API ---

    def add_mailbox(self, user: MailUser, port: int, **incoming: Any) -> int:
        """An IMAP account for ``user`` and a channel fed by it; returns the account id."""
        doc = mailbox_account_doc(user, port=port, **incoming)
        account = self.request("POST", "/api/v1/accounts", 201, json=doc)
        channel = {"address": f"support-{account['id']}@example.com", "account_id": account["id"]}
        self.request("POST", "/api/v1/channels", 201, json=channel)
        return int(account["id"])

    def health(self, account_id: int) -> dict[str, Any]:
        result: dict[str, Any] = self.request("GET", f"/api/v1/accounts/{account_id}/health")
        return result

    def subjects(self) -> list[str]:
        return [c["subject"] for c in self.request("GET", "/api/v1/cases", params={"limit": 500})]

    def wait_for(self, what: str, check: Callable[[], bool], seconds: float) -> float:
        start = time.monotonic()
        while not check():
            if time.monotonic() - start > seconds:
                raise AssertionError(f"not within {seconds} s: {what}\n{self.logs()}")
            time.sleep(0.02)
        return time.monotonic() - start

    def first_sync(self, account_id: int, seconds: float = 20) -> dict[str, Any]:
        """Waits until the account has been fetched once; returns its health."""
        self.wait_for(
            f"first sync of account {account_id}",
            lambda: self.health(account_id)["last_success_at"] is not None,
            seconds,
        )
        return self.health(account_id)

    def delivery_time(
        self, label: str, deliver: Callable[[str], None], *, limit: float = 15
    ) -> float:
        """Seconds from the start of ``deliver(subject)`` until the case is listed."""
        subject = f"{label} {time.monotonic_ns()}"
        start = time.monotonic()
        deliver(subject)
        while subject not in self.subjects():
            if time.monotonic() - start > limit:
                raise AssertionError(f"{subject!r} not a case after {limit} s\n{self.logs()}")
            time.sleep(0.02)
        took = time.monotonic() - start
        LATENCIES.append((f"{label} [{self.env['CASEMAIL_DATABASE_URL'].split(':')[0]}]", took))
        return took


@pytest.fixture
def casemail(tmp_path: Path, dovecot: Dovecot) -> Iterator[Casemail]:
    """An installation on SQLite; its processes are stopped (by PID) after the test."""
    yield from _installation(tmp_path, f"sqlite:///{tmp_path / 'casemail.db'}", dovecot)


@pytest.fixture
def casemail_any_db(db_url: str, tmp_path: Path, dovecot: Dovecot) -> Iterator[Casemail]:
    """The same on SQLite and on PostgreSQL."""
    yield from _installation(tmp_path, db_url, dovecot)


def _installation(tmp: Path, db_url: str, dovecot: Dovecot) -> Iterator[Casemail]:
    env = {
        **os.environ,
        "CASEMAIL_HOME": str(tmp / "home"),
        "CASEMAIL_DATABASE_URL": db_url,
        "CASEMAIL_SMTP_HOSTNAME": "casemail.test",
        "CASEMAIL_TLS_CA_FILE": str(dovecot.ca_file),
    }
    installation = Casemail(env=env, tmp=tmp)
    installation.cli(
        "user", "add", "--name", "Eve", "--email", "eve@example.com", "--role", "admin"
    )
    installation.token = installation.cli("token", "create", "--name", "e2e").strip()
    yield installation
    for process in installation.processes:
        if process.alive():
            process.popen.kill()
            process.popen.wait(timeout=10)


def lmtp(dovecot: Dovecot, user: MailUser) -> Callable[[str], None]:
    return lambda subject: dovecot.deliver(user, sample_message(subject=subject))


def append(dovecot: Dovecot, user: MailUser) -> Callable[[str], None]:
    return lambda subject: dovecot.append(user, "INBOX", sample_message(subject=subject))


def assert_stops_cleanly(process: Process, within: float = 5) -> None:
    code, took = process.stop(signal.SIGTERM)
    log = process.log.read_text()
    assert code == 0, log
    assert took < within, f"{process.name} took {took:.1f} s to stop:\n{log}"
    assert "Traceback" not in log, log


# --- IDLE: within two seconds ----------------------------------------------------------------


def test_serve_turns_idle_news_into_cases_within_two_seconds(
    casemail_any_db: Casemail, dovecot: Dovecot
) -> None:
    cm = casemail_any_db
    user = dovecot.add_user()
    dovecot.deliver(user, sample_message(subject="Waiting before the account existed"))
    serve = cm.serve()
    account_id = cm.add_mailbox(user, dovecot.ports.imaps)
    health = cm.first_sync(account_id)
    assert health["state"] == "ok", health
    assert health["last_error"] is None
    assert cm.subjects() == ["Waiting before the account existed"]

    # The watcher goes back to IDLE after each wake-up: every delivery is seen on its own.
    for label, deliver in [
        ("serve, IDLE, LMTP #1", lmtp(dovecot, user)),
        ("serve, IDLE, APPEND", append(dovecot, user)),
        ("serve, IDLE, LMTP #2", lmtp(dovecot, user)),
    ]:
        took = cm.delivery_time(label, deliver)
        assert took < REQUIRED_LATENCY, f"{label}: {took:.2f} s\n{cm.logs()}"
    assert len(cm.subjects()) == 4
    assert cm.health(account_id)["state"] == "ok"

    assert_stops_cleanly(serve)


# --- `casemail worker` beside `casemail serve --no-workers` -----------------------------------


def test_worker_process_fetches_for_serve_without_workers(
    casemail_any_db: Casemail, dovecot: Dovecot
) -> None:
    cm = casemail_any_db
    user = dovecot.add_user()
    serve = cm.serve("--no-workers")
    account_id = cm.add_mailbox(user, dovecot.ports.imaps)
    dovecot.deliver(user, sample_message(subject="Before any worker ran"))
    time.sleep(3)  # several worker passes long: serve alone fetches nothing
    assert cm.health(account_id)["last_success_at"] is None
    assert cm.subjects() == []

    worker = cm.worker()
    cm.first_sync(account_id)
    assert cm.subjects() == ["Before any worker ran"]
    for label in ("worker, IDLE, LMTP #1", "worker, IDLE, LMTP #2"):
        took = cm.delivery_time(label, lmtp(dovecot, user))
        assert took < REQUIRED_LATENCY, f"{label}: {took:.2f} s\n{cm.logs()}"
    listed = json.loads(cm.cli("case", "list", "--json"))  # the CLI, on the same database
    assert sorted(c["subject"] for c in listed) == sorted(cm.subjects())
    assert len(listed) == 3

    assert_stops_cleanly(worker)
    assert_stops_cleanly(serve)


def test_serve_and_a_worker_on_one_database_store_each_message_once(
    casemail_any_db: Casemail, dovecot: Dovecot
) -> None:
    """Two processes with workers (serve's own and ``casemail worker``): the mailbox has one
    owner (its lease), so one IDLE session watches it; each delivery becomes exactly one
    case, and neither records an error."""
    cm = casemail_any_db
    user = dovecot.add_user()
    with LinkProxy(dovecot.ports.imap) as proxy:
        serve = cm.serve()
        worker = cm.worker()

        def status() -> dict[str, Any]:
            found: dict[str, Any] = json.loads(cm.cli("status", "--json"))
            return found

        cm.wait_for("two workers", lambda: len(status()["workers"]) == 2, 20)
        account_id = cm.add_mailbox(user, proxy.port, security="none")
        cm.first_sync(account_id)
        cm.wait_for(
            "one owner of the mailbox",
            lambda: sorted(w["mailboxes"] for w in status()["workers"]) == [0, 1],
            15,
        )
        cm.wait_for("the owner in IDLE", lambda: len(set(proxy.commands(rb"IDLE"))) == 1, 15)
        time.sleep(3)  # several passes of both processes: the other one stays out
        assert len(set(proxy.commands(rb"IDLE"))) == 1
        for n in range(3):
            cm.delivery_time(f"serve + worker, IDLE, LMTP #{n + 1}", lmtp(dovecot, user))
        time.sleep(1)  # the slower of the two has finished too
        subjects = cm.subjects()
        assert len(subjects) == len(set(subjects)) == 3, subjects
        health = cm.health(account_id)
        assert (health["state"], health["failures"], health["last_error"]) == ("ok", 0, None)
        assert_stops_cleanly(worker)
        assert_stops_cleanly(serve)


# --- A server without IDLE is polled ---------------------------------------------------------

POLL_INTERVAL = 5  # seconds, the smallest an account allows


def test_a_server_without_idle_is_polled_at_the_account_interval(
    casemail: Casemail, dovecot: Dovecot
) -> None:
    cm = casemail
    user = add_user_with_capabilities(dovecot, "IMAP4rev1", "LITERAL+", "UIDPLUS")
    with LinkProxy(dovecot.ports.imap) as proxy:
        serve = cm.serve()
        account_id = cm.add_mailbox(
            user, proxy.port, security="none", poll_interval_seconds=POLL_INTERVAL
        )
        health = cm.first_sync(account_id)
        assert (health["state"], health["last_error"]) == ("ok", None)  # not an error
        latencies = [
            cm.delivery_time(f"serve, polling every {POLL_INTERVAL} s, LMTP #{n + 1}", deliver)
            for n, deliver in enumerate([lmtp(dovecot, user)] * 3)
        ]
        # Delivered just after a poll, each waits for the next one: the interval, plus at
        # most a second until the workers see the account is due, plus the sync itself.
        assert all(POLL_INTERVAL - 1 < took < POLL_INTERVAL + 2.5 for took in latencies)
        assert proxy.commands(rb"IDLE") == []
        logins = len(proxy.commands(rb"LOGIN .*"))
        assert logins >= 4  # the first sync, then a poll (a new session) per delivery
        assert cm.health(account_id)["state"] == "ok"
        assert_stops_cleanly(serve)


# --- Dead links: the error in plain words, then recovery -------------------------------------


def test_a_broken_link_shows_in_health_and_the_watcher_comes_back(
    casemail: Casemail, dovecot: Dovecot
) -> None:
    """The link breaks under the IDLE session and the server stays unreachable for a while
    (a restart): the account says so, and IDLE resumes once the server is back."""
    cm = casemail
    user = dovecot.add_user()
    with LinkProxy(dovecot.ports.imaps) as proxy:
        serve = cm.serve()
        account_id = cm.add_mailbox(user, proxy.port)  # TLS end to end through the proxy
        cm.first_sync(account_id)
        assert cm.delivery_time("serve, IDLE, before the break", lmtp(dovecot, user)) < 2

        proxy.refuse()  # every connection closed; new ones reset
        cm.wait_for(
            "the error on the account", lambda: cm.health(account_id)["state"] == "error", 5
        )
        health = cm.health(account_id)
        assert health["failures"] == 1
        assert health["last_error"].startswith(f"IMAP 127.0.0.1:{proxy.port}"), health
        assert "waiting for new mail (IDLE): the connection broke" in health["last_error"]
        assert user.password not in str(health)
        dovecot.deliver(user, sample_message(subject="Delivered while the link was down"))
        time.sleep(1)
        proxy.admit()

        # Reconnected after the back-off (one poll interval): what came meanwhile is fetched.
        cm.wait_for("the account fetched again", lambda: cm.health(account_id)["state"] == "ok", 15)
        assert "Delivered while the link was down" in cm.subjects()
        health = cm.health(account_id)
        assert health["failures"] == 0
        assert "connection broke" in health["last_error"]  # kept, with its time, for the admin
        took = cm.delivery_time("serve, IDLE, after the link came back", lmtp(dovecot, user))
        assert took < REQUIRED_LATENCY
        assert_stops_cleanly(serve)


def test_a_restarted_mail_server_is_reconnected_to(casemail: Casemail, dovecot: Dovecot) -> None:
    """Dovecot itself stops (it says BYE to the IDLE session) and comes back on the same
    ports, as after an upgrade; the mailbox is a new one (new UIDVALIDITY)."""
    cm = casemail
    first = Dovecot(dovecot.pki, dovecot.tokens)  # same CA: casemail trusts both
    second: Dovecot | None = None
    try:
        first.start()
        user = first.add_user()
        serve = cm.serve()
        account_id = cm.add_mailbox(user, first.ports.imaps)
        cm.first_sync(account_id)
        assert cm.delivery_time("serve, IDLE, before a restart", lmtp(first, user)) < 2

        first.stop()
        cm.wait_for(
            "the error on the account", lambda: cm.health(account_id)["state"] == "error", 5
        )
        error = cm.health(account_id)["last_error"]
        assert error.startswith(
            f"IMAP 127.0.0.1:{first.ports.imaps}: waiting for new mail (IDLE): the connection broke"
        ), error
        second = Dovecot(dovecot.pki, dovecot.tokens)
        second.ports = first.ports
        second.start()
        second.add_user(user.address.split("@")[0], user.password)
        cm.wait_for("the account fetched again", lambda: cm.health(account_id)["state"] == "ok", 15)
        took = cm.delivery_time("serve, IDLE, after a restart", lmtp(second, user))
        assert took < REQUIRED_LATENCY
        assert len(cm.subjects()) == 2
        assert_stops_cleanly(serve)
    finally:
        first.stop()
        if second is not None:
            second.stop()


def test_a_link_gone_silent_is_noticed_at_the_next_idle_restart(
    casemail: Casemail, dovecot: Dovecot
) -> None:
    """No FIN, no RST, no answer: DONE at the next IDLE restart gets no reply within the
    read timeout, the account says so, and the watcher reconnects."""
    cm = casemail
    user = dovecot.add_user()
    with LinkProxy(dovecot.ports.imap) as proxy:
        serve = cm.serve(idle_seconds=1)
        account_id = cm.add_mailbox(user, proxy.port, security="none", read_timeout=2)
        cm.first_sync(account_id)
        cm.wait_for("IDLE", lambda: len(proxy.commands(rb"IDLE")) >= 1, 5)

        proxy.freeze()
        cm.wait_for(
            "the error on the account", lambda: cm.health(account_id)["state"] == "error", 6
        )
        error = cm.health(account_id)["last_error"]
        assert error == (
            f"IMAP 127.0.0.1:{proxy.port}: waiting for new mail (IDLE): no answer within 2 s, "
            "so the connection was closed"
        )
        proxy.thaw()
        cm.wait_for("the account fetched again", lambda: cm.health(account_id)["state"] == "ok", 15)
        took = cm.delivery_time("serve, IDLE, after a silent link", lmtp(dovecot, user))
        assert took < REQUIRED_LATENCY
        assert_stops_cleanly(serve)


# --- IDLE is restarted on time ---------------------------------------------------------------


def test_idle_is_restarted_on_time_on_one_connection(casemail: Casemail, dovecot: Dovecot) -> None:
    cm = casemail
    user = dovecot.add_user()
    with LinkProxy(dovecot.ports.imap) as proxy:
        serve = cm.serve(idle_seconds=0.5)
        account_id = cm.add_mailbox(user, proxy.port, security="none")
        cm.first_sync(account_id)
        synced_at = cm.health(account_id)["last_success_at"]
        time.sleep(3)
        idles, dones = proxy.commands(rb"IDLE"), proxy.commands(rb"DONE", tagged=False)
        # Every half second: IDLE ends with DONE and starts again, on the one connection.
        assert len(idles) >= 4, idles
        assert len(dones) >= len(idles) - 1
        assert len(set(idles)) == 1
        assert set(dones) == set(idles)
        assert len(proxy.commands(rb"LOGIN .*")) == 2  # the watcher and its first sync
        assert cm.health(account_id)["last_success_at"] == synced_at  # no sync without news

        for n in range(2):
            took = cm.delivery_time(
                f"serve, IDLE restarted every 0.5 s, LMTP #{n + 1}", lmtp(dovecot, user)
            )
            assert took < REQUIRED_LATENCY
        before = len(proxy.commands(rb"IDLE"))
        time.sleep(1.5)
        assert len(proxy.commands(rb"IDLE")) >= before + 2  # still restarting after the wakes
        assert_stops_cleanly(serve)


# --- Stopping ----------------------------------------------------------------------------------


def test_sigterm_stops_serve_with_watchers_on_a_dead_link(
    casemail: Casemail, dovecot: Dovecot
) -> None:
    """Watchers in IDLE, one of them on a link that no longer answers (its read timeout is
    the default minute): SIGTERM still ends serve within seconds, with exit code 0."""
    cm = casemail
    healthy, stranded = dovecot.add_user(), dovecot.add_user()
    with LinkProxy(dovecot.ports.imaps) as proxy:
        serve = cm.serve()
        ok_id = cm.add_mailbox(healthy, dovecot.ports.imaps)
        stuck_id = cm.add_mailbox(stranded, proxy.port, read_timeout=60)
        cm.first_sync(ok_id)
        cm.first_sync(stuck_id)
        time.sleep(0.5)  # both in IDLE
        proxy.freeze()
        assert_stops_cleanly(serve, within=5)
    # Stopping is no failure of either account (the CLI reads the same database).
    for account_id in (ok_id, stuck_id):
        health = json.loads(cm.cli("account", "health", str(account_id), "--json"))
        assert (health["state"], health["failures"], health["last_error"]) == ("ok", 0, None)


# --- Changes made through the API reach a running watcher ------------------------------------


def test_a_deactivated_account_is_no_longer_fetched(casemail: Casemail, dovecot: Dovecot) -> None:
    cm = casemail
    user = dovecot.add_user()
    serve = cm.serve()
    account_id = cm.add_mailbox(user, dovecot.ports.imaps)
    cm.first_sync(account_id)
    assert cm.delivery_time("serve, IDLE, before deactivating", lmtp(dovecot, user)) < 2
    cm.request("POST", f"/api/v1/accounts/{account_id}/deactivate")
    time.sleep(2)  # a worker pass or two
    dovecot.deliver(user, sample_message(subject="After the account was deactivated"))
    time.sleep(3)
    assert "After the account was deactivated" not in cm.subjects()
    assert_stops_cleanly(serve)


def test_changed_settings_take_effect_without_a_restart(
    casemail: Casemail, dovecot: Dovecot
) -> None:
    """A folder added to a watched account is fetched at once, and then at the account's
    poll interval (only the first folder is watched by IDLE)."""
    cm = casemail
    user = dovecot.add_user()
    dovecot.create_folder(user, "Support")
    dovecot.append(user, "Support", sample_message(subject="Sorted by a server rule"))
    serve = cm.serve()
    account_id = cm.add_mailbox(user, dovecot.ports.imaps)
    cm.first_sync(account_id)
    assert cm.subjects() == []
    cm.request(
        "PATCH",
        f"/api/v1/accounts/{account_id}",
        json={"incoming": {"folders": ["INBOX", "Support"]}},
    )
    cm.wait_for("the new folder fetched", lambda: cm.subjects() == ["Sorted by a server rule"], 5)
    took = cm.delivery_time(
        f"serve, IDLE on INBOX, folder Support polled every {POLL_INTERVAL} s",
        lambda subject: dovecot.append(user, "Support", sample_message(subject=subject)),
    )
    assert took < POLL_INTERVAL + 2.5
    took = cm.delivery_time("serve, IDLE, two folders, LMTP", lmtp(dovecot, user))
    assert took < REQUIRED_LATENCY

    # A new password is used at once: here a wrong one, then the right one again.
    path = f"/api/v1/accounts/{account_id}"
    cm.request("PATCH", path, json={"incoming": {"password": "not-the-password"}})
    cm.wait_for("the login refused", lambda: cm.health(account_id)["state"] == "error", 5)
    error = cm.health(account_id)["last_error"]
    assert "not-the-password" not in error
    assert "password" in error.lower() or "authentication" in error.lower(), error
    cm.request("PATCH", path, json={"incoming": {"password": user.password}})
    cm.request("POST", f"{path}/sync", 202)  # no need to wait out the back-off
    cm.wait_for("fetching again", lambda: cm.health(account_id)["state"] == "ok", 5)
    took = cm.delivery_time("serve, IDLE, after a password change", lmtp(dovecot, user))
    assert took < REQUIRED_LATENCY
    assert_stops_cleanly(serve)
