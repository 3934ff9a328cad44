"""The Alembic migrations build exactly the tables the models describe, on both databases."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import func, select

from casemail.db import Database
from casemail.db.migrate import alembic_config, upgrade
from casemail.db.models import Account, Base, Installation, MailboxFolder, MailboxItem


def test_migrations_match_the_models(db: Database) -> None:
    with db.engine.connect() as connection:
        context = MigrationContext.configure(connection, opts={"compare_type": True})
        differences = compare_metadata(context, Base.metadata)
    assert differences == []


def test_0005_counts_folders_synced_before_it_as_imported(tmp_path: Path) -> None:
    """A folder synced before 0005 was imported in full: a later initial_import setting
    must not treat its next sync as the first. Down and up again, on SQLite's batch mode."""
    db = Database.from_url(f"sqlite:///{tmp_path / 'casemail.db'}")
    upgrade(db)
    with db.write() as session:
        account = Account(company_id=1, role="global", name="Old", email="old@example.com")
        session.add(account)
        session.flush()
        session.add(MailboxFolder(account_id=account.id, folder="INBOX", uidvalidity=7, last_uid=3))
        skipped = MailboxItem(account_id=account.id, folder="INBOX", uidl="u1", import_as="skip")
        session.add(skipped)

    with db.engine.connect() as connection:
        command.downgrade(alembic_config(connection), "0004")
        connection.commit()
    upgrade(db)

    with db.read() as session:
        assert session.scalar(select(MailboxFolder.import_until_uid)) == 0
        assert session.scalar(select(func.count()).select_from(MailboxItem)) == 0
    db.dispose()


def test_0006_creates_one_installation_and_goes_down_and_up(tmp_path: Path) -> None:
    """The installation row (instance id, token key) exists after the upgrade; down to
    0005 and up again works on SQLite's batch mode and yields a fresh identity."""
    db = Database.from_url(f"sqlite:///{tmp_path / 'casemail.db'}")
    upgrade(db)
    with db.read() as session:
        first = session.execute(select(Installation.instance_id, Installation.token_key)).all()
    assert len(first) == 1
    assert len(first[0].token_key) == 64
    with db.engine.connect() as connection:
        command.downgrade(alembic_config(connection), "0005")
        connection.commit()
    upgrade(db)
    with db.read() as session:
        again = session.execute(select(Installation.instance_id)).all()
    assert len(again) == 1
    assert again[0].instance_id != first[0].instance_id
    db.dispose()
