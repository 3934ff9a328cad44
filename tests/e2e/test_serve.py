"""``casemail serve`` as a real process: swaks sends, the API and the CLI show the case.

Also the durability promise: a 250 answer means the message survives ``kill -9``.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import free_port

CASEMAIL = str(Path(sys.executable).parent / "casemail")


@dataclass
class Service:
    """One ``casemail serve`` process and the environment the CLI needs to reach its data."""

    env: dict[str, str]
    http_port: int
    smtp_port: int
    log: Path
    process: subprocess.Popen[bytes] | None = None
    token: str = field(default="", repr=False)

    def cli(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        result = subprocess.run(
            [CASEMAIL, *args], env=self.env, capture_output=True, text=True, timeout=60
        )
        if check:
            assert result.returncode == 0, result.stdout + result.stderr
        return result

    def start(self) -> None:
        with self.log.open("ab") as log:
            self.process = subprocess.Popen(
                [
                    CASEMAIL,
                    "serve",
                    "--http-port",
                    str(self.http_port),
                    "--smtp-port",
                    str(self.smtp_port),
                ],
                env=self.env,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            assert self.process.poll() is None, self.log.read_text()
            try:
                if httpx.get(f"{self.base}/healthz", timeout=1).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        raise AssertionError("casemail serve did not answer /healthz:\n" + self.log.read_text())

    def kill(self, sig: int = signal.SIGTERM) -> int:
        assert self.process is not None
        self.process.send_signal(sig)
        code = self.process.wait(timeout=30)
        self.process = None
        return code

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.http_port}"

    def api(self, path: str) -> Any:
        response = httpx.get(
            f"{self.base}{path}", headers={"Authorization": f"Bearer {self.token}"}, timeout=10
        )
        assert response.status_code == 200, response.text
        return response.json()

    def swaks(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [
                "swaks",
                "--server",
                "127.0.0.1",
                "--port",
                str(self.smtp_port),
                "--timeout",
                "20",
                *args,
            ],
            capture_output=True,
            text=True,
            timeout=60,
        )


@pytest.fixture
def service(db_url: str, tmp_path: Path) -> Iterator[Service]:
    env = {
        **os.environ,
        "CASEMAIL_HOME": str(tmp_path / "home"),
        "CASEMAIL_DATABASE_URL": db_url,
        "CASEMAIL_SMTP_HOSTNAME": "casemail.test",
    }
    svc = Service(env=env, http_port=free_port(), smtp_port=free_port(), log=tmp_path / "serve.log")
    svc.cli("channel", "add", "--address", "support@example.com", "--name", "Support")
    svc.cli("user", "add", "--name", "Eve", "--email", "eve@example.com", "--role", "admin")
    svc.token = svc.cli("token", "create", "--name", "e2e").stdout.strip()
    svc.start()
    yield svc
    if svc.process is not None:
        svc.kill()


def _cases(service: Service) -> list[dict[str, Any]]:
    data = service.api("/api/v1/cases")
    return list(data["items"] if isinstance(data, dict) else data)


def test_swaks_mail_becomes_a_case_and_replies_thread(service: Service) -> None:
    first = service.swaks(
        "--tls",
        "--from",
        "alice@customer.example",
        "--to",
        "support@example.com",
        "--header",
        "Subject: Invoice 4711 is wrong",
        "--header",
        "Message-Id: <first@customer.example>",
        "--body",
        "The total should be 120 EUR.",
    )
    assert first.returncode == 0, first.stdout + first.stderr
    assert "250 " in first.stdout

    [case] = _cases(service)
    assert case["subject"] == "Invoice 4711 is wrong"
    case_id = case["id"]

    # A reply by In-Reply-To and a reply carrying only the subject tag (same sender domain).
    by_header = service.swaks(
        "--from",
        "alice@customer.example",
        "--to",
        "support@example.com",
        "--header",
        "Subject: Re: Invoice 4711 is wrong",
        "--header",
        "In-Reply-To: <first@customer.example>",
        "--body",
        "Any news?",
    )
    assert by_header.returncode == 0, by_header.stdout + by_header.stderr
    by_tag = service.swaks(
        "--from",
        "bob@customer.example",
        "--to",
        "support@example.com",
        "--header",
        f"Subject: [Case #{case_id}] still wrong",
        "--body",
        "Colleague here.",
    )
    assert by_tag.returncode == 0, by_tag.stdout + by_tag.stderr

    assert len(_cases(service)) == 1
    messages = service.api(f"/api/v1/cases/{case_id}/messages")
    items = messages["items"] if isinstance(messages, dict) else messages
    assert len(items) == 3

    # The CLI reads the same database.
    listed = json.loads(service.cli("case", "list", "--json").stdout)
    assert [c["id"] for c in listed] == [case_id]
    shown = json.loads(service.cli("case", "show", str(case_id), "--json").stdout)
    assert shown["case"]["subject"] == "Invoice 4711 is wrong"
    assert shown["case"]["message_count"] == 3
    assert "The total should be 120 EUR." in shown["messages"][0]["text_body"]


def test_unknown_recipient_is_refused_at_rcpt(service: Service) -> None:
    result = service.swaks("--from", "alice@customer.example", "--to", "nobody@example.com")
    assert result.returncode != 0
    assert "550" in result.stdout
    assert _cases(service) == []


def test_accepted_mail_survives_kill_9(service: Service) -> None:
    result = service.swaks(
        "--from",
        "alice@customer.example",
        "--to",
        "support@example.com",
        "--header",
        "Subject: Sent just before the crash",
    )
    assert result.returncode == 0, result.stdout + result.stderr
    # No grace period: SIGKILL at once after the client saw 250.
    assert service.kill(signal.SIGKILL) == -signal.SIGKILL
    service.start()
    subjects = [c["subject"] for c in _cases(service)]
    assert subjects == ["Sent just before the crash"]


def test_sigterm_stops_cleanly(service: Service) -> None:
    assert service.kill(signal.SIGTERM) == 0
    assert "Traceback" not in service.log.read_text()
