"""Run the real ``casemail`` command with its own home directory and the test's database."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import dataclass
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import pytest

from tests.support import wire_bytes

CASEMAIL = Path(sys.executable).parent / "casemail"


@dataclass
class Cli:
    """Runs ``casemail`` with its own home directory and the test's database."""

    env: dict[str, str]
    home: Path
    db_url: str

    def run(self, *args: str, stdin: str = "") -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [str(CASEMAIL), *args],
            env=self.env,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
            input=stdin,
        )

    def ok(self, *args: str, stdin: str = "") -> str:
        result = self.run(*args, stdin=stdin)
        assert result.returncode == 0, f"casemail {' '.join(args)}:\n{result.stdout}{result.stderr}"
        assert "Traceback" not in result.stderr
        return result.stdout

    def json(self, *args: str) -> Any:
        return json.loads(self.ok(*args, "--json"))

    def fails(self, *args: str, code: int = 1, stdin: str = "") -> str:
        """Runs a command that must fail cleanly; returns its error output."""
        result = self.run(*args, stdin=stdin)
        output = result.stdout + result.stderr
        assert result.returncode == code, f"casemail {' '.join(args)}:\n{output}"
        assert "Traceback" not in output
        return result.stderr

    def eml(self, name: str, message: EmailMessage) -> Path:
        path = self.home.parent / name
        path.write_bytes(wire_bytes(message))
        return path


@pytest.fixture
def cli(db_url: str, tmp_path: Path) -> Cli:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CASEMAIL_")}
    env["CASEMAIL_DNS_NAMESERVERS"] = os.environ["CASEMAIL_DNS_NAMESERVERS"]  # the local DNS
    home = tmp_path / "home"
    env.update(CASEMAIL_HOME=str(home), CASEMAIL_DATABASE_URL=db_url, NO_COLOR="1", COLUMNS="200")
    return Cli(env, home, db_url)
