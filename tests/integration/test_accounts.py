"""Account rules on a real database (SQLite and PostgreSQL): roles, defaults, send-as,
system/global separation, private hosts, no half-saved accounts, secrets never in clear."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from cryptography.fernet import Fernet
from sqlalchemy import func, inspect, select
from sqlalchemy.orm import Session

from casemail.accounts import service
from casemail.accounts.rules import AccountError
from casemail.accounts.schemas import AccountCreate, AccountUpdate
from casemail.accounts.secrets import KeyRing
from casemail.accounts.sending import account_for_user, system_account
from casemail.db import Database
from casemail.db.models import Account, Base, OutboxEntry
from casemail.db.types import utcnow
from casemail.users.service import add_member, create_team, create_user

CANARY = "canary-Pw-5c1f9e7a"
KEYS = KeyRing((Fernet.generate_key(),), "test")


def document(**overrides: Any) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "role": "global",
        "name": "Office",
        "email": "office@example.com",
        "incoming": {
            "protocol": "imap",
            "host": "imap.example.com",
            "security": "tls",
            "password": CANARY,
        },
        "outgoing": {"host": "smtp.example.com", "security": "starttls"},
    }
    doc.update(overrides)
    return doc


def create(db: Database, *, allow_private: bool = True, **overrides: Any) -> int:
    with db.write() as session:
        account, _ = service.create_account(
            session,
            AccountCreate.model_validate(document(**overrides)),
            keys=KEYS,
            allow_private=allow_private,
        )
        return account.id


def count_accounts(db: Database) -> int:
    with db.read() as session:
        return int(session.scalar(select(func.count()).select_from(Account)) or 0)


def act(db: Database, account_id: int, action: Callable[[Session, Account], object]) -> None:
    """Run a service action on a freshly loaded account in its own transaction."""
    with db.write() as session:
        account = session.get(Account, account_id)
        assert account is not None
        action(session, account)


def mark_verified(db: Database, account_id: int) -> None:
    with db.write() as session:
        account = session.get(Account, account_id)
        assert account is not None
        account.incoming_test_ok = account.outgoing_test_ok = True
        account.incoming_tested_at = account.outgoing_tested_at = utcnow()


def test_defaults_fill_ports_and_secrets_stay_out_of_settings(db: Database) -> None:
    account_id = create(db)
    with db.read() as session:
        account = session.get(Account, account_id)
        assert account is not None
        assert account.settings["incoming"]["port"] == 993
        assert account.settings["outgoing"]["port"] == 587
        assert "password" not in account.settings["incoming"]
        assert account.secrets is not None
        assert CANARY.encode() not in account.secrets
        assert service.stored_secrets(account, KEYS) == {"incoming_password": CANARY}
        assert CANARY not in repr(account)


def test_no_plaintext_secret_anywhere_in_the_database(db: Database, db_url: str) -> None:
    create(db)
    create(
        db,
        role="system",
        email="noreply@example.com",
        incoming={
            "protocol": "pop3",
            "host": "pop.example.com",
            "username": "noreply",
            "password": CANARY + "-system",
        },
    )
    with db.read() as session:
        for table in Base.metadata.sorted_tables:
            for row in session.execute(select(table)):
                for value in row:
                    shown = value.decode("latin-1") if isinstance(value, bytes) else str(value)
                    assert CANARY not in shown, f"canary found in {table.name}"
    if db_url.startswith("sqlite"):
        db.dispose()
        path = Path(db_url.removeprefix("sqlite:///"))
        for file in path.parent.glob(path.name + "*"):  # the database, its WAL and SHM
            assert CANARY.encode() not in file.read_bytes(), file


def test_nothing_is_saved_when_a_rule_fails(db: Database) -> None:
    with pytest.raises(AccountError) as refused:
        create(
            db,
            allow_private=False,
            incoming={
                "protocol": "imap",
                "host": "127.0.0.1",
                "password": CANARY,
            },
        )
    assert refused.value.field == "incoming.host"
    assert "private, loopback or link-local" in str(refused.value)
    with pytest.raises(AccountError) as missing:
        create(db, incoming={"protocol": "imap", "host": "imap.example.com"})
    assert missing.value.field == "incoming.password"
    assert count_accounts(db) == 0


def test_owner_rules(db: Database) -> None:
    with pytest.raises(AccountError, match="personal account needs an owner user"):
        create(db, role="personal")
    with pytest.raises(AccountError, match=r"no user 'ghost@example\.com'"):
        create(db, role="personal", user="ghost@example.com")
    with db.write() as session:
        create_user(session, name="Ann", email="ann@example.com")
        create_team(session, name="Support")
    assert create(db, role="personal", user="ann@example.com")
    assert create(db, role="team", team="Support", email="support@example.com")
    with pytest.raises(AccountError, match="belongs to the company"):
        create(db, role="global", team="Support")


def test_send_as_must_stay_in_the_user_domain(db: Database) -> None:
    foreign = {"host": "smtp.example.com", "from_address": "boss@other.example"}
    with pytest.raises(AccountError) as refused:
        create(db, outgoing=foreign)
    assert refused.value.field == "outgoing.from_address"
    assert "not in the user domain example.com" in str(refused.value)
    assert create(db, outgoing={**foreign, "allow_send_as": True})
    assert create(db, email="x@example.com", outgoing={**foreign, "user_domain": "other.example"})


def test_system_account_may_not_share_the_global_login(db: Database) -> None:
    create(db)
    with pytest.raises(AccountError) as refused:
        create(
            db,
            role="system",
            name="Notices",
            email="noreply@example.com",
            incoming={
                "protocol": "imap",
                "host": "IMAP.example.com",
                "username": "OFFICE@example.com",
                "password": "different",
            },
        )
    assert refused.value.status == 409
    assert "must not share credentials with the global account" in str(refused.value)
    assert create(db, role="system", email="noreply@example.com")  # its own login: fine


def test_one_default_per_user_and_sender_resolution(db: Database) -> None:
    with db.write() as session:
        ann = create_user(session, name="Ann", email="ann@example.com")
        bob = create_user(session, name="Bob", email="bob@example.com")
        cid = create_user(session, name="Cid", email="cid@example.com")
        support = create_team(session, name="Support")
        add_member(session, support, bob)
        ids = ann.id, bob.id, cid.id
    global_id = create(db, is_default=True)
    first = create(
        db, role="personal", user="ann@example.com", is_default=True, email="ann@example.com"
    )
    second = create(
        db,
        role="personal",
        user="ann@example.com",
        is_default=True,
        email="ann.private@example.com",
    )
    team_id = create(db, role="team", team="Support", is_default=True, email="support@example.com")
    system_id = create(
        db,
        role="system",
        email="noreply@example.com",
        is_default=True,
        incoming=None,
        outgoing={"host": "relay.example.com", "auth_required": False},
    )
    with db.read() as session:
        defaults = session.scalars(
            select(Account.id).where(Account.owner_user_id == ids[0], Account.is_default)
        ).all()
        assert defaults == [second]
        assert session.get(Account, first) is not None
        resolved = [account_for_user(session, i) for i in ids]
        assert [a.id if a else None for a in resolved] == [second, team_id, global_id]
        system = system_account(session)
        assert system is not None
        assert system.id == system_id


def test_replacing_the_global_account_needs_the_new_one_verified(db: Database) -> None:
    old = create(db, is_default=True)
    new = create(db, name="Office OAuth", email="office2@example.com")
    with pytest.raises(AccountError, match="test this account first"):
        act(db, new, service.set_default)
    with pytest.raises(AccountError, match="current global account"):
        act(db, old, service.deactivate)
    mark_verified(db, new)
    act(db, new, service.set_default)
    with db.write() as session:
        previous = session.get(Account, old)
        assert previous is not None
        assert not previous.is_default
        service.deactivate(session, previous)
        assert previous.deactivated_at is not None
        assert not previous.incoming_active


def test_accounts_with_history_are_not_deleted(db: Database) -> None:
    used, unused = create(db), create(db, email="spare@example.com")
    with db.write() as session:
        session.add(OutboxEntry(account_id=used, message_id="<m1@example.com>"))
    with pytest.raises(AccountError, match="deactivate it instead"):
        act(db, used, service.delete_account)
    act(db, unused, service.delete_account)
    assert count_accounts(db) == 1


def update(db: Database, account_id: int, **changes: Any) -> Account:
    with db.write() as session:
        account = session.get(Account, account_id)
        assert account is not None
        service.update_account(
            session, account, AccountUpdate.model_validate(changes), keys=KEYS, allow_private=True
        )
    with db.read() as session:
        fresh = session.get(Account, account_id)
        assert fresh is not None
        session.expunge(fresh)
        return fresh


def test_updates_merge_and_keep_or_drop_passwords(db: Database) -> None:
    account_id = create(db)
    mark_verified(db, account_id)
    changed = update(db, account_id, incoming={"security": "starttls"})
    assert changed.settings["incoming"]["port"] == 143  # "use defaults" for the new security
    assert changed.settings["incoming"]["host"] == "imap.example.com"
    assert service.stored_secrets(changed, KEYS) == {"incoming_password": CANARY}
    assert changed.incoming_test_ok is None  # changed settings must be tested again
    renamed = update(db, account_id, name="Front office", incoming={"password": "new-one"})
    assert renamed.name == "Front office"
    assert service.stored_secrets(renamed, KEYS) == {"incoming_password": "new-one"}
    with pytest.raises(AccountError) as refused:
        update(db, account_id, incoming={"port": 0})
    assert refused.value.field == "incoming.port"
    dropped = update(db, account_id, incoming=None, outgoing={"auth_required": False})
    assert "incoming" not in dropped.settings
    assert dropped.secrets is None


def test_reencrypt_all_uses_the_newest_key(db: Database) -> None:
    account_id = create(db)
    newer = KeyRing((Fernet.generate_key(), *KEYS.keys), "rotated")
    with db.write() as session:
        assert service.reencrypt_all(session, newer) == 1
    with db.read() as session:
        account = session.get(Account, account_id)
        assert account is not None
        only_new = KeyRing(newer.keys[:1], "new only")
        assert service.stored_secrets(account, only_new) == {"incoming_password": CANARY}


def test_partial_unique_indexes_exist(db: Database) -> None:
    with db.read() as session:
        names = {i["name"] for i in inspect(session.connection()).get_indexes("accounts")}
        assert {
            "uq_accounts_personal_default",
            "uq_accounts_team_default",
            "uq_accounts_company_default",
        } <= names
