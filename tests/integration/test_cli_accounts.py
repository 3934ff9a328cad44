"""casemail account|user|team|keys as real processes, on both databases."""

from __future__ import annotations

import json
import socket
import subprocess
from pathlib import Path
from typing import Any

from casemail.accounts.secrets import KeyRing
from casemail.accounts.service import stored_secrets
from casemail.db import Database
from casemail.db.models import Account
from tests.clisupport import CASEMAIL, Cli

CANARY = "Pw-canary-cli-81c3"


def account_file(tmp_path: Path, **overrides: Any) -> Path:
    doc: dict[str, Any] = {
        "role": "global",
        "name": "Office",
        "email": "office@example.com",
        "incoming": {"protocol": "pop3", "host": "pop.example.com", "security": "tls"},
        "outgoing": {"host": "smtp.example.com", "security": "tls"},
    }
    doc.update(overrides)
    path = tmp_path / "account.json"
    path.write_text(json.dumps(doc))
    return path


def run_with_input(cli: Cli, stdin: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(CASEMAIL), *args],
        env=cli.env,
        input=stdin,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def keyring(cli: Cli) -> KeyRing:
    keys = (cli.home / "secret.key").read_text().split()
    return KeyRing(tuple(k.encode() for k in keys), "test")


def test_add_asks_for_the_password_and_never_prints_it(cli: Cli, tmp_path: Path) -> None:
    added = run_with_input(cli, CANARY + "\n", "account", "add", "-f", str(account_file(tmp_path)))
    assert added.returncode == 0, added.stdout + added.stderr
    assert CANARY not in added.stdout + added.stderr
    assert "#1 Office <office@example.com> [global] active" in added.stdout
    assert "incoming: pop3 pop.example.com:995 tls, not tested" in added.stdout
    assert "outgoing: smtp smtp.example.com:465 tls, not tested" in added.stdout
    shown = cli.json("account", "show", "1")
    assert shown["incoming"]["has_password"] is True
    listing = cli.ok("account", "list") + json.dumps(cli.json("account", "list"))
    assert CANARY not in listing
    database = Database.from_url(cli.db_url)
    with database.read() as session:
        account = session.get(Account, 1)
        assert account is not None
        assert stored_secrets(account, keyring(cli)) == {"incoming_password": CANARY}
    database.dispose()


def test_add_with_json_document_answers_json(cli: Cli, tmp_path: Path) -> None:
    path = account_file(tmp_path, incoming=None, outgoing={"host": "smtp.example.com"})
    added = run_with_input(cli, CANARY + "\n", "account", "add", "--json", str(path))
    assert added.returncode == 0, added.stdout + added.stderr
    created = json.loads(added.stdout)  # the password prompt went to stderr
    assert created["outgoing"]["has_password"] is True
    assert created["outgoing"]["port"] == 587
    assert CANARY not in added.stdout


def test_bad_documents_fail_with_the_field_and_save_nothing(cli: Cli, tmp_path: Path) -> None:
    stderr = cli.fails("account", "add", "--set", "role=global", "--set", "name=X")
    assert "email: Field required" in stderr
    bad_port = account_file(tmp_path, outgoing={"host": "smtp.example.com", "port": 99999})
    stderr = cli.fails("account", "add", "-f", str(bad_port), "--set", "incoming.password=x")
    assert "outgoing.port: Input should be less than or equal to 65535" in stderr
    send_as = account_file(
        tmp_path, outgoing={"host": "smtp.example.com", "from_address": "ceo@elsewhere.example"}
    )
    stderr = cli.fails("account", "add", "-f", str(send_as), "--set", "incoming.password=x")
    assert "outgoing.from_address: the From address ceo@elsewhere.example" in stderr
    assert cli.json("account", "list") == []


def test_edit_default_deactivate(cli: Cli, tmp_path: Path) -> None:
    path = account_file(tmp_path)
    cli.ok("account", "add", "-f", str(path), "--set", f"incoming.password={CANARY}")
    edited = json.loads(
        cli.ok("account", "edit", "1", "--set", "incoming.leave_on_server=false", "--print-json")
    )
    assert edited["incoming"]["leave_on_server"] is False
    assert any("removed from the server" in w for w in edited["warnings"])
    assert "warning: mail is removed from the server" in cli.ok("account", "show", "1")
    assert cli.json("account", "default", "1")["is_default"] is True
    assert cli.json("account", "deactivate", "1")["active"] is False
    assert cli.json("account", "list") == []
    assert [a["id"] for a in cli.json("account", "list", "--all")] == [1]
    assert "is deactivated" in cli.fails("account", "edit", "1", "--set", "name=Again")


def test_initial_import_is_set_shown_and_checked(cli: Cli, tmp_path: Path) -> None:
    path = account_file(tmp_path)
    added = cli.ok(
        "account",
        "add",
        "-f",
        str(path),
        "--set",
        f"incoming.password={CANARY}",
        "--set",
        "incoming.initial_import=from-now",
    )
    assert "    initial import: from now" in added
    assert cli.json("account", "show", "1")["incoming"]["initial_import"] == "from_now"
    edited = json.loads(
        cli.ok("account", "edit", "1", "--set", "incoming.initial_import=archive", "--print-json")
    )
    assert edited["incoming"]["initial_import"] == "archive"
    stderr = cli.fails("account", "edit", "1", "--set", "incoming.initial_import=later")
    assert "incoming.initial_import" in stderr
    assert "must be one of all, archive, from_now (or from-now), not 'later'" in stderr
    assert cli.json("account", "show", "1")["incoming"]["initial_import"] == "archive"


def test_test_command_reports_the_field_and_exits_2(cli: Cli, tmp_path: Path) -> None:
    with socket.socket() as unused:
        unused.bind(("127.0.0.1", 0))
        port = unused.getsockname()[1]
        incoming = {"protocol": "imap", "host": "127.0.0.1", "port": port, "security": "none"}
        path = account_file(tmp_path, incoming=incoming, outgoing=None)
        cli.ok("account", "add", "-f", str(path), "--set", f"incoming.password={CANARY}")
        result = cli.run("account", "test", "1")
    assert result.returncode == 2, result.stdout + result.stderr
    assert "test incoming: FAILED" in result.stdout
    assert "field to fix: port" in result.stdout
    assert CANARY not in result.stdout + result.stderr
    assert cli.json("account", "show", "1")["last_test_incoming"]["ok"] is False
    no_to = account_file(tmp_path, email="o2@example.com", incoming=None)
    cli.ok("account", "add", "-f", str(no_to), "--set", "outgoing.auth_required=false")
    assert "give --to ADDRESS" in cli.fails("account", "test", "2")


def test_detect_a_preset(cli: Cli) -> None:
    found = cli.json("account", "detect", "someone@fastmail.com", "--no-probe")
    assert found["source"] == "preset"
    assert found["incoming"]["host"] == "imap.fastmail.com"
    assert "error: no-at-sign: An email address must have an @-sign" in cli.fails(
        "account", "detect", "no-at-sign"
    )


def test_keys_rotate_keeps_every_secret_readable(cli: Cli, tmp_path: Path) -> None:
    cli.ok("account", "add", "-f", str(account_file(tmp_path)), "--set", "incoming.password=one")
    before = keyring(cli)
    out = cli.ok("keys", "rotate")
    assert "re-encrypted the secrets of 1 account(s)" in out
    after = keyring(cli)
    assert len(after.keys) == 1
    assert after.keys != before.keys
    assert cli.json("account", "show", "1")["incoming"]["has_password"] is True


def test_users_and_teams(cli: Cli) -> None:
    cli.ok("team", "add", "Support")
    user = cli.json(
        "user", "add", "--name", "Ann", "--email", "ann@example.com", "--team", "Support"
    )
    assert user["team_ids"] == [1]
    assert "exists already" in cli.fails("user", "add", "--name", "A", "--email", "ann@example.com")
    assert "no team 'Sales'" in cli.fails("team", "add-member", "Sales", "ann@example.com")
    assert cli.json("team", "list") == [{"id": 1, "name": "Support", "member_ids": [user["id"]]}]
