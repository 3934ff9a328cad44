"""Shared fixtures. Every test that takes ``db`` runs on SQLite and on PostgreSQL.

PostgreSQL: a fresh database is created for the test session on the server named by
``CASEMAIL_TEST_PG_ADMIN_URL`` (default: the local server, database ``test``, user
``postgres``) and dropped at the end. Where no server answers, the PostgreSQL variants are
skipped with the reason.
"""

from __future__ import annotations

import logging
import os
import random
import secrets
import socket
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from hypothesis import settings
from sqlalchemy import text

from casemail.accounts.hosts import use_nameservers
from casemail.db import Database
from casemail.db.migrate import upgrade
from casemail.db.models import Base
from tests.netsupport import LocalDNS

# The gate must not fail on an input nobody has seen before: property tests draw the same
# examples every run. CASEMAIL_HYPOTHESIS=explore draws fresh ones while developing.
settings.register_profile("gate", derandomize=True, database=None)
settings.register_profile("explore", max_examples=1000)
settings.load_profile("explore" if os.environ.get("CASEMAIL_HYPOTHESIS") == "explore" else "gate")

# Fixtures kept in their own modules (shared by several test files).
pytest_plugins = ["tests.apisupport", "tests.clisupport"]


@pytest.fixture(scope="session", autouse=True)
def local_dns() -> Iterator[LocalDNS]:
    """Every host-name lookup casemail makes in the tests goes to a local DNS server that
    knows only ``localhost``: the machine's own resolver sits off this machine, and a test
    typing ``imap.example.com`` must not send a query there. Set for this process and, by
    the environment, for every casemail process the tests start."""
    server = LocalDNS()
    server.load({("localhost.", "A"): ["127.0.0.1"]})
    address = f"127.0.0.1:{server.port}"
    previous = os.environ.get("CASEMAIL_DNS_NAMESERVERS")
    os.environ["CASEMAIL_DNS_NAMESERVERS"] = address
    use_nameservers([address])
    yield server
    use_nameservers([])
    if previous is None:
        os.environ.pop("CASEMAIL_DNS_NAMESERVERS", None)
    else:
        os.environ["CASEMAIL_DNS_NAMESERVERS"] = previous
    server.server.shutdown()


PG_ADMIN_URL = os.environ.get(
    "CASEMAIL_TEST_PG_ADMIN_URL", "postgresql://postgres@127.0.0.1:5432/test"
)


# Ports below Linux's ephemeral range (32768 up), split between the test processes: a port
# the OS handed one process for "port 0" could be taken by the other process's server
# before the first binds it, and pytest-xdist runs two of them.
_PORTS = range(20000, 32000)


def _my_ports() -> range:
    worker = os.environ.get("PYTEST_XDIST_WORKER", "")
    count = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1") or 1)
    index = int(worker[2:]) if worker.startswith("gw") and worker[2:].isdigit() else 0
    size = len(_PORTS) // max(count, 1)
    start = _PORTS.start + index * size
    return range(start, start + size)


def free_port() -> int:
    """A loopback port nothing listens on, from this test process's own share."""
    ports = _my_ports()
    for _ in range(200):
        port = random.choice(ports)
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    raise RuntimeError(f"no free port in {ports}")


def _pg_unavailable_reason() -> str | None:
    try:
        with psycopg.connect(PG_ADMIN_URL, connect_timeout=3):
            return None
    except psycopg.Error as exc:
        return f"PostgreSQL at {PG_ADMIN_URL} not reachable ({exc.__class__.__name__}: {exc})"


@pytest.fixture(scope="session")
def pg_url() -> Iterator[str]:
    """URL of a fresh, migrated PostgreSQL database for this test session."""
    reason = _pg_unavailable_reason()
    if reason:
        pytest.skip(f"PostgreSQL tests skipped: {reason}")
    name = f"casemail_test_{os.getpid()}_{secrets.token_hex(4)}"
    with psycopg.connect(PG_ADMIN_URL, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    base = PG_ADMIN_URL.rsplit("/", 1)[0]
    url = f"{base}/{name}".replace("postgresql://", "postgresql+psycopg://", 1)
    database = Database.from_url(url)
    upgrade(database)
    database.dispose()
    yield url
    with psycopg.connect(PG_ADMIN_URL, autocommit=True) as admin:
        admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def _reset_pg(database: Database) -> None:
    tables = ", ".join(f'"{t.name}"' for t in Base.metadata.sorted_tables)
    with database.engine.begin() as conn:
        conn.execute(text(f"TRUNCATE {tables} RESTART IDENTITY CASCADE"))
        conn.execute(text("INSERT INTO companies (name, created_at) VALUES ('Default', now())"))


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgresql)])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'casemail.db'}"
    url: str = request.getfixturevalue("pg_url")
    database = Database.from_url(url)
    _reset_pg(database)
    database.dispose()
    return url


@pytest.fixture
def db(db_url: str) -> Iterator[Database]:
    database = Database.from_url(db_url)
    upgrade(database)
    yield database
    database.dispose()


class _CanaryWatch(logging.Handler):
    """Sees every log record of the whole run; secrets in tests are named ``*canary*``."""

    def __init__(self) -> None:
        super().__init__(level=logging.DEBUG)
        self.leaks: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        text = record.getMessage()
        if record.exc_info and record.exc_info[1] is not None:
            text += repr(record.exc_info[1])
        if "canary" in text.lower():
            self.leaks.append(f"{record.name}: {text[:300]}")


@pytest.fixture(scope="session", autouse=True)
def no_secret_in_any_log() -> Iterator[None]:
    """No password, token or key used by any test may reach a log line, at any level."""
    watch = _CanaryWatch()
    root = logging.getLogger()
    previous = root.level
    root.addHandler(watch)
    root.setLevel(logging.DEBUG)
    yield
    root.removeHandler(watch)
    root.setLevel(previous)
    assert not watch.leaks, "secrets in logs:\n" + "\n".join(watch.leaks)
