"""The mailbox runner and scheduler: health, back-off, isolation, reset counter, API, CLI."""

from __future__ import annotations

import asyncio
import json
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select

from casemail.accounts import service
from casemail.accounts.schemas import AccountCreate
from casemail.bootstrap import AppContext, build_context
from casemail.channels.service import add_channel
from casemail.config import Settings
from casemail.db.models import Account, Case, Message
from casemail.db.types import utcnow
from casemail.mailboxes.health import account_health
from casemail.mailboxes.runner import (
    NotSyncable,
    due_accounts,
    reset_counter,
    sync_account,
)
from casemail.workers.mailboxes import poll_mailboxes
from tests.apisupport import Api
from tests.clisupport import Cli
from tests.imapsupport import mailbox_account_doc
from tests.mailservers import Dovecot, MailUser, closed_port
from tests.support import sample_message


@pytest.fixture
def ctx(db_url: str, tmp_path: Path, dovecot: Dovecot) -> AppContext:
    settings = Settings(home=tmp_path / "home", database_url=db_url, tls_ca_file=dovecot.ca_file)
    return build_context(settings)


def add_account(ctx: AppContext, user: MailUser, *, port: int, **incoming: Any) -> int:
    doc = mailbox_account_doc(user, port=port, **incoming)
    with ctx.db.write() as session:
        account, _ = service.create_account(
            session, AccountCreate.model_validate(doc), keys=ctx.keys, allow_private=True
        )
        add_channel(session, address=f"in-{account.id}@example.com", account_id=account.id)
        return account.id


def history(ctx: AppContext) -> int:
    with ctx.db.read() as session:
        return int(session.scalar(select(func.count()).select_from(Message)) or 0)


def test_sync_stores_mail_and_records_health(
    ctx: AppContext, dovecot: Dovecot, mail_user: MailUser
) -> None:
    for n in range(3):
        dovecot.deliver(mail_user, sample_message(subject=f"Question {n}"))
    account_id = add_account(ctx, mail_user, port=dovecot.ports.imaps)
    report = sync_account(ctx, account_id)
    assert report.stored == 3
    assert history(ctx) == 3
    health = account_health(ctx.db, account_id)
    assert health is not None
    assert health.state == "ok"
    assert health.last_success_at is not None
    assert [(f.folder, f.messages_done, f.messages_total) for f in health.folders] == [
        ("INBOX", 3, 3)
    ]
    assert sync_account(ctx, account_id).stored == 0
    assert dovecot.count(mail_user) == 3  # the default leaves the server untouched


def test_a_failing_account_backs_off_and_never_stops_the_others(
    ctx: AppContext, dovecot: Dovecot, mail_user: MailUser
) -> None:
    broken = add_account(ctx, mail_user, port=closed_port(), security="none")
    good = add_account(ctx, mail_user, port=dovecot.ports.imaps)
    dovecot.deliver(mail_user, sample_message(subject="Still arrives"))
    assert set(due_accounts(ctx.db)) == {broken, good}

    async def one_pass() -> None:
        stop = asyncio.Event()
        task = asyncio.create_task(poll_mailboxes(ctx, stop))
        for _ in range(100):
            await asyncio.sleep(0.1)
            if history(ctx) == 1 and account_health(ctx.db, broken).state == "error":  # type: ignore[union-attr]
                break
        stop.set()
        await task

    asyncio.run(one_pass())
    assert history(ctx) == 1
    failed = account_health(ctx.db, broken)
    assert failed is not None
    assert failed.state == "error"
    assert failed.failures == 1
    assert failed.last_error
    assert "port" in failed.last_error.lower()
    assert failed.next_sync_at is not None
    assert failed.next_sync_at > utcnow()
    assert due_accounts(ctx.db) == []
    with pytest.raises(Exception):  # noqa: B017, PT011 - any failure; recorded below
        sync_account(ctx, broken)
    again = account_health(ctx.db, broken)
    assert again is not None
    assert again.failures == 2
    first_delay = failed.next_sync_at - failed.last_error_at  # type: ignore[operator]
    second_delay = again.next_sync_at - again.last_error_at  # type: ignore[operator]
    assert second_delay > first_delay + timedelta(seconds=1)


def test_reset_counter_reads_everything_again_without_duplicates(
    ctx: AppContext, dovecot: Dovecot, mail_user: MailUser
) -> None:
    for n in range(4):
        dovecot.deliver(mail_user, sample_message(subject=f"Invoice {n}"))
    account_id = add_account(ctx, mail_user, port=dovecot.ports.imaps)
    assert sync_account(ctx, account_id).stored == 4
    assert reset_counter(ctx.db, account_id) == 4
    report = sync_account(ctx, account_id)
    assert report.stored == 0
    assert report.duplicates == 4
    assert history(ctx) == 4
    with ctx.db.read() as session:
        assert session.scalar(select(func.count()).select_from(Case)) == 4


def test_reset_counter_after_an_import_from_now_downloads_everything(
    ctx: AppContext, dovecot: Dovecot, mail_user: MailUser
) -> None:
    """The reset asks for everything: what "from now" left alone comes in as normal mail,
    and neither this reset nor a later one starts skipping again."""
    for n in range(3):
        dovecot.deliver(mail_user, sample_message(subject=f"Old {n}"))
    account_id = add_account(ctx, mail_user, port=dovecot.ports.imaps, initial_import="from-now")
    first = sync_account(ctx, account_id)
    assert (first.stored, first.skipped) == (0, 3)
    dovecot.deliver(mail_user, sample_message(subject="New"))
    assert sync_account(ctx, account_id).stored == 1

    assert reset_counter(ctx.db, account_id) == 1
    again = sync_account(ctx, account_id)

    assert (again.stored, again.duplicates, again.skipped, again.archived) == (3, 1, 0, 0)
    with ctx.db.read() as session:
        statuses = session.execute(select(Case.subject, Case.status)).all()
    assert sorted(statuses) == [
        ("New", "new"),
        ("Old 0", "new"),
        ("Old 1", "new"),
        ("Old 2", "new"),
    ]
    assert reset_counter(ctx.db, account_id) == 4
    assert (sync_account(ctx, account_id).stored, history(ctx)) == (0, 4)


def test_the_runner_takes_the_initial_import_from_the_account(
    ctx: AppContext, dovecot: Dovecot, mail_user: MailUser
) -> None:
    dovecot.deliver(mail_user, sample_message(subject="Old"))
    account_id = add_account(ctx, mail_user, port=dovecot.ports.imaps, initial_import="archive")
    report = sync_account(ctx, account_id)
    assert (report.stored, report.archived) == (1, 1)
    with ctx.db.read() as session:
        assert session.scalar(select(Case.status)) == "closed"


def test_accounts_without_channel_or_incoming_say_why(ctx: AppContext, mail_user: MailUser) -> None:
    with pytest.raises(NotSyncable, match="no account 999"):
        sync_account(ctx, 999)
    doc = {
        "role": "global",
        "name": "Send only",
        "email": mail_user.address,
        "outgoing": {"host": "127.0.0.1", "auth_required": False},
    }
    with ctx.db.write() as session:
        account, _ = service.create_account(
            session, AccountCreate.model_validate(doc), keys=ctx.keys, allow_private=True
        )
        send_only = account.id
    with pytest.raises(NotSyncable, match="no active incoming server"):
        sync_account(ctx, send_only)


def test_api_health_sync_and_reset(api: Api, dovecot: Dovecot, mail_user: MailUser) -> None:
    api.context.settings.tls_ca_file = dovecot.ca_file
    account_id = add_account(api.context, mail_user, port=dovecot.ports.imaps)
    with api.db.write() as session:
        account = session.get(Account, account_id)
        assert account is not None
        account.next_sync_at = utcnow() + timedelta(hours=1)
    queued = api.post(f"/api/v1/accounts/{account_id}/sync")
    assert queued.status_code == 202, queued.text
    assert account_id in due_accounts(api.db)
    health = api.get(f"/api/v1/accounts/{account_id}/health").json()
    assert health["state"] == "idle"
    assert health["channel_id"] is not None
    assert api.post(f"/api/v1/accounts/{account_id}/reset-counter").status_code == 200
    assert api.get("/api/v1/accounts/999/health").status_code == 404


def test_cli_sync_shows_progress_and_counts(
    cli: Cli, dovecot: Dovecot, mail_user: MailUser
) -> None:
    cli.env["CASEMAIL_TLS_CA_FILE"] = str(dovecot.ca_file)
    for n in range(5):
        dovecot.deliver(mail_user, sample_message(subject=f"Order {n}"))
    doc = {
        "role": "global",
        "name": "Orders",
        "email": mail_user.address,
        "incoming": {
            "protocol": "imap",
            "host": "127.0.0.1",
            "port": dovecot.ports.imaps,
            "security": "tls",
            "password": mail_user.password,
        },
    }
    path = cli.home.parent / "account.json"
    path.write_text(json.dumps(doc))
    cli.ok("account", "add", "-f", str(path))
    cli.ok("channel", "add", "--address", "orders@example.com", "--account", "1")
    result = cli.run("account", "sync", "1")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "account 1: 5 new, 0 already stored, 0 quarantined" in result.stdout
    assert "5/5" in result.stderr  # the progress bar
    health = cli.json("account", "health", "1")
    assert health["folders"][0]["messages_done"] == 5
    again = cli.ok("account", "sync", "1", "--full")
    assert "0 new, 5 already stored" in again
    assert mail_user.password not in result.stdout + result.stderr
