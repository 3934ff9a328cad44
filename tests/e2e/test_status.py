"""``casemail status``: worker processes register, beat, stop; dead ones are told apart;
the backlog figures come from the database. Real processes on SQLite and PostgreSQL."""

from __future__ import annotations

import json
import os
import signal
import time
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from casemail.db import Database
from casemail.db.models import WorkerProcess
from casemail.db.types import utcnow
from tests.e2e.test_serve_mailboxes import Casemail

pytestmark = pytest.mark.e2e


@pytest.fixture
def installation(db_url: str, tmp_path: Path) -> Iterator[Casemail]:
    env = {**os.environ, "CASEMAIL_HOME": str(tmp_path / "home"), "CASEMAIL_DATABASE_URL": db_url}
    cm = Casemail(env=env, tmp=tmp_path)
    cm.cli("db", "upgrade")
    yield cm
    for process in cm.processes:
        if process.alive():
            process.popen.kill()
            process.popen.wait(timeout=10)


def _status(cm: Casemail) -> dict[str, Any]:
    found: dict[str, Any] = json.loads(cm.cli("status", "--json"))
    return found


def _wait_for(cm: Casemail, what: str, check: Any, seconds: float = 20) -> dict[str, Any]:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        found = _status(cm)
        if check(found):
            return found
        time.sleep(0.3)
    raise AssertionError(f"not within {seconds} s: {what}\n{cm.logs()}")


def test_a_worker_registers_and_says_when_it_stops(installation: Casemail, db_url: str) -> None:
    cm = installation
    assert _status(cm)["workers"] == []
    process = cm._spawn("worker", ["worker", "--concurrency", "2"], None)
    running = _wait_for(cm, "a running worker", lambda s: len(s["workers"]) == 1)
    (worker,) = running["workers"]
    assert worker["state"] == "running"
    assert worker["pid"] == process.popen.pid
    assert worker["concurrency"] == 2
    code, _ = process.stop(signal.SIGTERM)
    assert code == 0, process.log.read_text()
    stopped = _status(cm)["workers"]
    assert [w["state"] for w in stopped] == ["stopped"]
    text = cm.cli("status")
    assert "workers: 0 running" in text
    assert "outbox: 0 waiting" in text

    # A worker killed without a word: its heartbeat ages until it counts as dead.
    database = Database.from_url(db_url)
    try:
        with database.write() as session:
            row = session.get_one(WorkerProcess, worker["id"])
            row.stopped_at = None
            row.heartbeat_at = utcnow() - timedelta(seconds=31)
    finally:
        database.dispose()
    assert [w["state"] for w in _status(cm)["workers"]] == ["dead"]
