"""The ``casemail`` command, run for real as a subprocess, on SQLite and on PostgreSQL."""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterator
from email.message import EmailMessage
from pathlib import Path

import pytest
from alembic.script import ScriptDirectory
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from casemail.api.app import create_app
from casemail.bootstrap import build_context
from casemail.config import Settings
from casemail.db import Database
from casemail.db.migrate import MIGRATIONS, current_revision
from casemail.db.models import ApiToken, Case, Channel, Message
from tests.clisupport import Cli
from tests.conftest import free_port
from tests.support import sample_message

HEAD = ScriptDirectory(str(MIGRATIONS)).get_current_head()


@pytest.fixture
def database(cli: Cli) -> Iterator[Database]:
    """The CLI's database, opened directly to check what the commands wrote."""
    database = Database.from_url(cli.db_url)
    yield database
    database.dispose()


def error_line(stderr: str) -> str:
    lines = [line for line in stderr.splitlines() if line.strip()]
    assert len(lines) == 1, stderr
    return lines[0]


def with_attachment() -> EmailMessage:
    message = sample_message(
        sender="Bob Builder <bob@customer.example>",
        subject="Invoice 4711 is wrong",
        body="The total is off by 10 EUR.\n",
    )
    message.add_attachment(
        b"%PDF-1.4 fake", maintype="application", subtype="pdf", filename="invoice.pdf"
    )
    return message


# --- db upgrade ---------------------------------------------------------------------------


def test_db_upgrade_migrates_and_is_idempotent(cli: Cli, database: Database) -> None:
    assert HEAD is not None
    assert cli.ok("db", "upgrade") == f"database at revision {HEAD}\n"
    assert cli.ok("db", "upgrade") == f"database at revision {HEAD}\n"
    assert current_revision(database) == HEAD
    with database.read() as session:
        assert session.scalars(select(Channel)).all() == []


def test_default_database_is_sqlite_in_home(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CASEMAIL_")}
    env["CASEMAIL_DNS_NAMESERVERS"] = os.environ["CASEMAIL_DNS_NAMESERVERS"]  # the local DNS
    env.update(CASEMAIL_HOME=str(tmp_path / "fresh" / "home"), NO_COLOR="1", COLUMNS="200")
    cli = Cli(env, tmp_path / "fresh" / "home", "")
    assert cli.ok("db", "upgrade") == f"database at revision {HEAD}\n"
    assert (tmp_path / "fresh" / "home" / "casemail.db").is_file()


def test_invalid_settings_are_reported_without_traceback(cli: Cli) -> None:
    cli.env["CASEMAIL_HTTP_PORT"] = "eighty"
    stderr = cli.fails("channel", "list")
    assert error_line(stderr).startswith("error: invalid settings: http_port: ")


def test_unreachable_database_is_one_clear_line_without_the_password(cli: Cli) -> None:
    port = free_port()  # nothing listens there
    cli.env["CASEMAIL_DATABASE_URL"] = f"postgresql://casemail:Pw-canary@127.0.0.1:{port}/x"
    stderr = cli.fails("channel", "list")
    assert "Traceback" not in stderr
    assert error_line(stderr).startswith("error: cannot use the database at postgresql")
    assert f"127.0.0.1:{port}/x" in stderr
    assert "Pw-canary" not in stderr


# --- channels -----------------------------------------------------------------------------


def test_channel_add_and_list_as_text(cli: Cli) -> None:
    assert cli.ok("channel", "list") == (
        "no channels yet: add one with `casemail channel add --address ADDR`\n"
    )
    out = cli.ok(
        "channel",
        "add",
        "--address",
        "Support@Example.COM",
        "--name",
        "Support desk",
        "--allow",
        "192.0.2.0/24",
        "--allow",
        "2001:db8::1",
    )
    assert out == "channel 1 added: support@example.com (Support desk)\n"
    assert cli.ok("channel", "add", "--address", "billing@example.com") == (
        "channel 2 added: billing@example.com (billing@example.com)\n"
    )

    lines = cli.ok("channel", "list").splitlines()
    assert len(lines) == 2
    assert lines[0].split()[:3] == ["1", "support@example.com", "active"]
    assert "Support desk" in lines[0]
    assert lines[0].endswith("[192.0.2.0/24, 2001:db8::1/128]")
    assert lines[1].split()[:3] == ["2", "billing@example.com", "active"]
    assert lines[1].endswith("[any sender IP]")


def test_channel_rules_show_and_update(cli: Cli) -> None:
    cli.ok("channel", "add", "--address", "support@example.com")
    assert cli.json("channel", "rules", "1")["changed_subject"] == "stay"
    updated = cli.json("channel", "rules", "1", "--update", '{"changed_subject": "split"}')
    assert updated["changed_subject"] == "split"
    assert cli.json("channel", "rules", "1")["changed_subject"] == "split"
    failed = cli.fails("channel", "rules", "1", "--update", '{"changed_subject": "maybe"}')
    assert "changed_subject" in failed
    assert "not JSON" in cli.fails("channel", "rules", "1", "--update", "{")
    assert "no channel 7" in cli.fails("channel", "rules", "7")


def test_channel_add_and_list_as_json(cli: Cli, database: Database) -> None:
    added = cli.json("channel", "add", "--address", "support@example.com", "--allow", "10.1.2.3/8")
    assert added["address"] == "support@example.com"
    assert added["name"] == "support@example.com"
    assert added["allowed_networks"] == ["10.0.0.0/8"]
    assert added["active"] is True
    assert added["subject_tag_prefix"] == "Case"
    assert added["purge_days"] == 30

    listed = cli.json("channel", "list")
    assert listed == [added]
    assert cli.json("channel", "list") == listed

    with database.read() as session:
        (row,) = session.scalars(select(Channel))
        assert row.id == added["id"]
        assert row.address == "support@example.com"


@pytest.mark.parametrize(
    ("address", "reason"),
    [
        ("not-an-address", "An email address must have an @-sign."),
        ("support@", "There must be something after the @-sign."),
        ("two words@example.com", "invalid character"),
        ("", "An email address must have an @-sign."),
    ],
)
def test_channel_add_refuses_bad_address_cleanly(
    cli: Cli, database: Database, address: str, reason: str
) -> None:
    stderr = cli.fails("channel", "add", "--address", address)
    line = error_line(stderr)
    assert line.startswith(f"error: {address!r} is not a valid email address")
    assert reason in line
    with database.read() as session:
        assert session.scalars(select(Channel)).all() == []


def test_channel_add_refuses_bad_network_and_duplicates(cli: Cli, database: Database) -> None:
    stderr = cli.fails("channel", "add", "--address", "a@example.com", "--allow", "intranet")
    assert error_line(stderr) == "error: 'intranet' is not an IP address or CIDR range"

    cli.ok("channel", "add", "--address", "support@example.com")
    stderr = cli.fails("channel", "add", "--address", "SUPPORT@example.com", "--name", "Again")
    assert error_line(stderr) == "error: a channel for support@example.com exists already"
    with database.read() as session:
        assert [c.name for c in session.scalars(select(Channel))] == ["support@example.com"]


def test_channel_add_without_address_is_a_usage_error(cli: Cli) -> None:
    stderr = cli.fails("channel", "add", code=2)
    assert "--address" in stderr
    assert "Missing option" in stderr


# --- tokens -------------------------------------------------------------------------------


def test_token_create_prints_a_token_the_api_accepts(
    cli: Cli, database: Database, tmp_path: Path
) -> None:
    refused = cli.fails("token", "create", "--name", "ci")
    assert "there is no admin yet" in refused
    cli.ok("user", "add", "--name", "Ann Admin", "--email", "ann@example.com", "--role", "admin")
    out = cli.ok("token", "create", "--name", "ci")
    token = out.strip()
    assert out == token + "\n", "the token is printed alone, for $(casemail token create)"
    assert token.startswith("cm_")
    assert len(token) >= 40
    second = cli.ok("token", "create").strip()
    assert second != token

    with database.read() as session:
        rows = {row.name: row for row in session.scalars(select(ApiToken))}
    assert set(rows) == {"ci", "cli"}
    # Only the hash is stored.
    assert rows["ci"].token_hash == hashlib.sha256(token.encode()).hexdigest()
    assert token not in {r.token_hash for r in rows.values()}

    context = build_context(Settings(home=tmp_path / "api", database_url=cli.db_url))
    try:
        with TestClient(create_app(context)) as client:
            response = client.get("/api/v1/channels", headers={"Authorization": f"Bearer {token}"})
            assert response.status_code == 200
            assert response.json() == []
            response = client.get("/api/v1/channels", headers={"Authorization": f"Bearer {second}"})
            assert response.status_code == 200
            response = client.get(
                "/api/v1/channels", headers={"Authorization": f"Bearer {token[:-1]}"}
            )
            assert response.status_code == 401
    finally:
        context.db.dispose()


# --- inject and cases ---------------------------------------------------------------------


def test_inject_then_case_list_and_show(cli: Cli) -> None:
    cli.ok("channel", "add", "--address", "support@example.com")
    path = cli.eml("invoice.eml", with_attachment())

    assert cli.ok("inject", "--channel", "support@example.com", str(path)) == (
        f"{path}: created case #1\n"
    )

    (listed,) = cli.json("case", "list")
    assert listed["id"] == 1
    assert listed["subject"] == "Invoice 4711 is wrong"
    assert listed["status"] == "new"
    assert listed["contact"]["email"] == "bob@customer.example"
    assert listed["contact"]["name"] == "Bob Builder"

    shown = cli.json("case", "show", "1")
    assert set(shown) == {"case", "messages"}
    assert shown["case"] == {**listed, "message_count": 1}
    (message,) = shown["messages"]
    assert message["direction"] == "inbound"
    assert message["from_address"] == "bob@customer.example"
    assert message["subject"] == "Invoice 4711 is wrong"
    assert message["text_body"].strip() == "The total is off by 10 EUR."
    (attachment,) = message["attachments"]
    assert attachment["filename"] == "invoice.pdf"
    assert attachment["content_type"] == "application/pdf"
    assert attachment["size"] == len(b"%PDF-1.4 fake")

    text = cli.ok("case", "list")
    assert text.startswith("#1 ")
    assert "bob@customer.example" in text
    assert "Invoice 4711 is wrong" in text

    text = cli.ok("case", "show", "1")
    assert text.startswith(
        "Case #1: Invoice 4711 is wrong\nstatus new, contact bob@customer.example"
    )
    assert "1 message(s)" in text
    assert "from bob@customer.example: Invoice 4711 is wrong" in text
    assert "The total is off by 10 EUR." in text
    assert "[attachment] invoice.pdf application/pdf 13 B" in text


def test_inject_json_mbox_reply_and_duplicate(cli: Cli, database: Database) -> None:
    cli.ok("channel", "add", "--address", "support@example.com")
    first = sample_message(subject="Printer on fire")
    reply = sample_message(subject="Re: Printer on fire", in_reply_to=first["Message-ID"])
    other = sample_message(sender="carol@other.example", subject="Login broken")
    mbox = cli.home.parent / "batch.mbox"
    mbox.write_bytes(
        b"".join(
            b"From sender@example.com Thu Jan  1 00:00:00 2024\n"
            + m.as_bytes().replace(b"\nFrom ", b"\n>From ")
            + b"\n"
            for m in (first, reply, other)
        )
    )

    # Plus-addressing reaches the base channel.
    results = cli.json("inject", "--channel", "support+ops@example.com", str(mbox))
    assert [(r["source"], r["outcome"], r["case_id"]) for r in results] == [
        (f"{mbox}#1", "created", 1),
        (f"{mbox}#2", "appended", 1),
        (f"{mbox}#3", "created", 2),
    ]
    assert all(r["quarantine_id"] is None for r in results)

    again = cli.json("inject", "--channel", "support@example.com", str(mbox))
    assert [(r["outcome"], r["case_id"]) for r in again] == [
        ("duplicate", 1),
        ("duplicate", 1),
        ("duplicate", 2),
    ]

    listed = cli.json("case", "list")
    assert [(c["id"], c["subject"]) for c in listed] == [
        (2, "Login broken"),
        (1, "Printer on fire"),
    ]
    assert cli.json("case", "list", "--status", "closed") == []
    shown = cli.json("case", "show", "1")
    assert shown["case"]["message_count"] == 2
    assert [m["subject"] for m in shown["messages"]] == ["Printer on fire", "Re: Printer on fire"]
    with database.read() as session:
        assert len(session.scalars(select(Case)).all()) == 2


def test_inject_empty_message_reports_quarantine(cli: Cli) -> None:
    cli.ok("channel", "add", "--address", "support@example.com")
    empty = cli.home.parent / "empty.eml"
    empty.write_bytes(b"\n")
    out = cli.ok("inject", "--channel", "support@example.com", str(empty))
    assert out == (
        f"{empty}: quarantined, quarantine #1: The message is empty (0 bytes of content).\n"
    )
    assert cli.ok("case", "list") == "no cases\n"


def test_inject_to_unknown_channel_or_missing_file_fails_cleanly(cli: Cli) -> None:
    cli.ok("channel", "add", "--address", "support@example.com")
    path = cli.eml("mail.eml", sample_message())
    stderr = cli.fails("inject", "--channel", "sales@example.com", str(path))
    assert error_line(stderr) == (
        "error: no channel for sales@example.com; add one with `casemail channel add`"
    )
    stderr = cli.fails(
        "inject", "--channel", "support@example.com", str(path.parent / "nope.eml"), code=2
    )
    assert "does not exist" in stderr
    assert cli.ok("case", "list") == "no cases\n"


def test_case_show_unknown_id_fails_cleanly(cli: Cli) -> None:
    cli.ok("db", "upgrade")
    for args in (("case", "show", "999"), ("case", "show", "999", "--json")):
        result = cli.run(*args)
        assert result.returncode == 1
        assert result.stdout == ""
        assert error_line(result.stderr) == "error: case 999 not found"
        assert "Traceback" not in result.stderr

    stderr = cli.fails("case", "show", "abc", code=2)
    assert "Invalid value for 'case_id': Input should be a valid integer" in stderr


def test_case_delete_hides_the_case_and_keeps_its_mail(cli: Cli, database: Database) -> None:
    cli.ok("channel", "add", "--address", "support@example.com")
    for subject in ("Kept", "Deleted"):
        path = cli.eml(f"{subject}.eml", sample_message(subject=subject))
        cli.ok("inject", "--channel", "support@example.com", str(path))

    assert cli.ok("case", "delete", "2") == "case 2 deleted (its mail stays stored)\n"

    assert [c["id"] for c in cli.json("case", "list")] == [1]
    assert error_line(cli.fails("case", "show", "2")) == "error: case 2 not found"
    assert error_line(cli.fails("case", "delete", "2")) == "error: case 2 not found"
    assert error_line(cli.fails("case", "delete", "999")) == "error: case 999 not found"
    with database.read() as session:
        assert session.scalar(select(func.count()).select_from(Message)) == 2


def test_case_list_refuses_unknown_status(cli: Cli) -> None:
    stderr = cli.fails("case", "list", "--status", "bogus")
    assert error_line(stderr) == (
        "error: unknown status 'bogus'; use one of new, open, pending, closed"
    )
