"""casemail company, user (passwords) and quarantine commands, on both databases."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from sqlalchemy import select

from casemail.auth.passwords import verify_password
from casemail.channels.service import add_channel
from casemail.db import Database
from casemail.db.models import User
from casemail.ingest import Source, ingest_raw
from tests.clisupport import Cli
from tests.support import sample_message, wire_bytes


@pytest.fixture
def database(cli: Cli) -> Iterator[Database]:
    cli.ok("db", "upgrade")
    database = Database.from_url(cli.db_url)
    yield database
    database.dispose()


def test_companies_users_and_passwords(cli: Cli, database: Database) -> None:
    assert "company 2 added: Globex" in cli.ok("company", "add", "Globex")
    assert "exists already" in cli.fails("company", "add", "Globex")
    assert [c["name"] for c in cli.json("company", "list")] == ["Default", "Globex"]
    cli.ok(
        "user", "add", "--name", "Gus", "--email", "gus@globex.example", "--company", "Globex",
        "--role", "admin", "--password-stdin", stdin="a long password 1\n",
    )  # fmt: skip
    weak = cli.fails(
        "user", "add", "--name", "Hal", "--email", "hal@globex.example", "--password-stdin",
        stdin="short\n",
    )  # fmt: skip
    assert "at least 10 characters" in weak
    with database.read() as session:
        gus = session.scalars(select(User).where(User.email == "gus@globex.example")).one()
        assert gus.company_id == 2
        assert verify_password(gus.password_hash, "a long password 1")
        assert session.scalar(select(User).where(User.email == "hal@globex.example")) is None
    cli.ok("user", "password", "gus@globex.example", "--password-stdin", stdin="another one 22\n")
    with database.read() as session:
        gus = session.scalars(select(User).where(User.email == "gus@globex.example")).one()
        assert verify_password(gus.password_hash, "another one 22")
        assert not verify_password(gus.password_hash, "a long password 1")
    assert "no user" in cli.fails("user", "password", "nobody@x.example", "--password-stdin")
    listed = {u["email"]: u for u in cli.json("user", "list")}
    assert listed["gus@globex.example"]["can_sign_in"] is True
    assert "password_hash" not in str(listed)


def test_quarantine_commands(cli: Cli, database: Database) -> None:
    with database.write() as session:
        channel_id = add_channel(session, address="support@example.com").id
    empty = ingest_raw(database, channel_id, b"", Source("api"))
    unknown = ingest_raw(database, channel_id, wire_bytes(sample_message()), Source("api"))
    assert empty.quarantine_id is not None
    assert unknown.case_id is not None
    listed = cli.ok("quarantine", "list")
    assert f"#{empty.quarantine_id}" in listed
    assert "empty" in listed
    assert "discarded" in cli.ok("quarantine", "discard", str(empty.quarantine_id))
    assert "not held" in cli.fails("quarantine", "reprocess", str(empty.quarantine_id))
    assert cli.json("quarantine", "list") == []
    assert cli.json("quarantine", "list", "--state", "all")[0]["state"] == "discarded"
    assert "no quarantine entry 99" in cli.fails("quarantine", "show", "99")
