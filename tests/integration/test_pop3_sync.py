"""POP3 sync against a real Dovecot, on SQLite and PostgreSQL: every retention setting,
connections cut before QUIT and in the middle of a message, a server without UIDL, a poison
message, the initial import modes, removing the mail of deleted cases. Counted exactly:
messages delivered = history entries + quarantined, none twice."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select, update

from casemail.accounts import service
from casemail.accounts.endpoint import Endpoint, Security
from casemail.accounts.schemas import AccountCreate
from casemail.bootstrap import build_context
from casemail.channels.service import add_channel
from casemail.config import Settings
from casemail.db import Database
from casemail.db.blobs import get_blob
from casemail.db.models import (
    Account,
    Case,
    InboundReceipt,
    MailboxItem,
    Message,
    QuarantineEntry,
)
from casemail.db.types import utcnow
from casemail.ingest import IngestOptions
from casemail.mailboxes.errors import MailboxError
from casemail.mailboxes.job import MailboxJob, Progress
from casemail.mailboxes.pop3_sync import sync_pop3
from casemail.mailboxes.runner import reset_counter, sync_account
from casemail.workers.jobs import reprocess_pending
from tests.apisupport import Api
from tests.mailservers import CutProxy, Dovecot, MailUser, TokenIssuer
from tests.support import FailingMessageWrites, sample_message, subject_says


@pytest.fixture
def proxies() -> Iterator[list[CutProxy]]:
    running: list[CutProxy] = []
    yield running
    for proxy in running:
        proxy.stop()


def cut_proxy(proxies: list[CutProxy], dovecot: Dovecot, **kw: Any) -> CutProxy:
    """A proxy in front of Dovecot's plain-text POP3 port (it has to read the commands)."""
    proxy = CutProxy(dovecot.ports.pop3, **kw)
    proxy.start()
    proxies.append(proxy)
    return proxy


def add_channel_for(db: Database, user: MailUser) -> tuple[int, int]:
    """An account fetching from the user's mailbox and the channel it feeds."""
    with db.write() as session:
        account = Account(
            company_id=1,
            role="global",
            name=f"POP3 {user.address}",
            email=user.address,
            settings={"incoming": {"protocol": "pop3", "host": "127.0.0.1"}},
            incoming_active=True,
        )
        session.add(account)
        session.flush()
        channel = add_channel(
            session, address=f"in-{account.id}@example.com", account_id=account.id
        )
        return account.id, channel.id


def pop3_job(
    db: Database,
    dovecot: Dovecot,
    user: MailUser,
    *,
    port: int | None = None,
    security: Security = "tls",
    **options: Any,
) -> MailboxJob:
    account_id, channel_id = add_channel_for(db, user)
    endpoint = Endpoint(
        protocol="pop3",
        host="127.0.0.1",
        port=port or dovecot.ports.pop3s,
        security=security,
        username=user.address,
        secret=user.password,
        ca_file=dovecot.ca_file,
        connect_timeout=5,
        read_timeout=10,
    )
    return MailboxJob(
        db=db,
        account_id=account_id,
        channel_id=channel_id,
        endpoint=endpoint,
        options=IngestOptions(),
        **options,
    )


def deliver(dovecot: Dovecot, user: MailUser, count: int, subject: str = "Question") -> None:
    for n in range(count):
        dovecot.deliver(user, sample_message(subject=f"{subject} {n}"))


def counted(db: Database, model: type) -> int:
    with db.read() as session:
        return int(session.scalar(select(func.count()).select_from(model)) or 0)


def history(db: Database) -> int:
    return counted(db, Message)


def quarantined(db: Database) -> int:
    return counted(db, QuarantineEntry)


def items(db: Database) -> list[MailboxItem]:
    with db.read() as session:
        return list(session.scalars(select(MailboxItem).order_by(MailboxItem.id)))


def removed(db: Database) -> list[str | None]:
    return [i.uidl for i in items(db) if i.removed_from_server_at is not None]


def test_new_mail_is_stored_once_and_a_copy_stays_on_the_server(
    db: Database, dovecot: Dovecot, mail_user: MailUser
) -> None:
    deliver(dovecot, mail_user, 3)
    seen: list[Progress] = []
    job = pop3_job(db, dovecot, mail_user, on_progress=seen.append)

    report = sync_pop3(job)

    assert (report.stored, report.duplicates, report.quarantined) == (3, 0, 0)
    assert (report.removed_from_server, report.folders) == (0, {"INBOX": 3})
    assert history(db) == 3
    assert len({i.uidl for i in items(db)}) == 3
    assert all(i.uidl and not i.uidl.startswith("sha256:") for i in items(db))
    assert seen[0] == Progress("INBOX", 0, 3)
    assert seen[-1] == Progress("INBOX", 3, 3)
    assert dovecot.count(mail_user) == 3

    again = sync_pop3(job)
    assert (again.stored, again.duplicates, again.removed_from_server) == (0, 0, 0)
    assert history(db) == 3
    assert dovecot.count(mail_user) == 3


def test_without_a_copy_on_the_server_mail_is_removed_once_stored(
    db: Database, dovecot: Dovecot, mail_user: MailUser
) -> None:
    deliver(dovecot, mail_user, 3)
    job = pop3_job(
        db, dovecot, mail_user, port=dovecot.ports.pop3, security="starttls", leave_on_server=False
    )

    report = sync_pop3(job)

    assert (report.stored, report.removed_from_server) == (3, 3)
    assert history(db) == 3
    assert dovecot.count(mail_user) == 0
    assert len(removed(db)) == 3

    deliver(dovecot, mail_user, 1, subject="Later")
    later = sync_pop3(job)
    assert (later.stored, later.removed_from_server) == (1, 1)
    assert (history(db), dovecot.count(mail_user), len(removed(db))) == (4, 0, 4)


def test_remove_after_n_days_removes_only_mail_stored_longer_ago(
    db: Database, dovecot: Dovecot, mail_user: MailUser
) -> None:
    deliver(dovecot, mail_user, 3)
    job = pop3_job(db, dovecot, mail_user, leave_on_server=True, delete_after_days=7)
    assert sync_pop3(job).removed_from_server == 0
    assert dovecot.count(mail_user) == 3

    old = [i.id for i in items(db)][:2]
    with db.write() as session:
        session.execute(
            update(MailboxItem)
            .where(MailboxItem.id.in_(old))
            .values(fetched_at=utcnow() - timedelta(days=8))
        )
    deliver(dovecot, mail_user, 1, subject="Fresh")
    report = sync_pop3(job)

    assert (report.stored, report.removed_from_server) == (1, 2)
    assert dovecot.count(mail_user) == 2
    assert [i.id for i in items(db) if i.removed_from_server_at is not None] == old
    assert history(db) == 4


def test_a_connection_that_dies_before_quit_removes_nothing_and_duplicates_nothing(
    db: Database, dovecot: Dovecot, mail_user: MailUser, proxies: list[CutProxy]
) -> None:
    deliver(dovecot, mail_user, 4)
    proxy = cut_proxy(proxies, dovecot, cut_on=b"QUIT")
    job = pop3_job(db, dovecot, mail_user, port=proxy.port, security="none", leave_on_server=False)

    with pytest.raises(MailboxError) as failed:
        sync_pop3(job)

    assert proxy.cuts == 1
    assert "server closed the connection" in str(failed.value)
    assert "ending the session (QUIT)" in str(failed.value)
    assert mail_user.password not in str(failed.value)
    # DELE was sent for all four, but without QUIT there is no UPDATE state.
    assert (history(db), dovecot.count(mail_user), removed(db)) == (4, 4, [])

    proxy.cut_on = None
    report = sync_pop3(job)

    assert (report.stored, report.duplicates, report.removed_from_server) == (0, 0, 4)
    assert (history(db), quarantined(db), dovecot.count(mail_user)) == (4, 0, 0)
    assert len(removed(db)) == 4


def test_a_connection_cut_in_the_middle_of_a_message_loses_and_repeats_nothing(
    db: Database, dovecot: Dovecot, mail_user: MailUser, proxies: list[CutProxy]
) -> None:
    deliver(dovecot, mail_user, 5)
    proxy = cut_proxy(proxies, dovecot, cut_on=b"RETR 3", after_bytes=120)
    job = pop3_job(db, dovecot, mail_user, port=proxy.port, security="none", leave_on_server=False)

    with pytest.raises(MailboxError, match="while fetching message 3") as failed:
        sync_pop3(job)

    assert "nothing was removed from the server" in str(failed.value)
    assert "what this run stored (2 new messages) is kept" in str(failed.value)
    assert (history(db), dovecot.count(mail_user), removed(db)) == (2, 5, [])

    proxy.cut_on = None
    report = sync_pop3(job)

    assert (report.stored, report.duplicates, report.removed_from_server) == (3, 0, 5)
    assert (history(db) + quarantined(db), dovecot.count(mail_user)) == (5, 0)
    assert len(items(db)) == 5


def test_a_server_without_uidl_is_followed_by_content_hash(
    db: Database, dovecot: Dovecot, mail_user: MailUser, proxies: list[CutProxy]
) -> None:
    deliver(dovecot, mail_user, 2)
    proxy = cut_proxy(proxies, dovecot, refuse=(b"UIDL",))
    job = pop3_job(db, dovecot, mail_user, port=proxy.port, security="none")

    assert sync_pop3(job).stored == 2
    assert all(i.uidl and i.uidl.startswith("sha256:") for i in items(db))
    again = sync_pop3(job)
    assert (again.stored, again.duplicates, history(db)) == (0, 0, 2)

    removing = sync_pop3(replace(job, leave_on_server=False))
    assert (removing.stored, removing.removed_from_server) == (0, 2)
    assert (history(db), dovecot.count(mail_user), len(removed(db))) == (2, 0, 2)


def PoisonWrites(db: Database) -> FailingMessageWrites:
    """Putting a message whose subject says "poison" on a case always crashes."""
    return FailingMessageWrites(
        db, subject_says("poison"), error="simulated crash while storing the case message"
    )


def test_a_poison_message_ends_in_quarantine_and_the_rest_flow(
    db: Database, dovecot: Dovecot, mail_user: MailUser
) -> None:
    deliver(dovecot, mail_user, 1, subject="Before")
    dovecot.deliver(mail_user, sample_message(subject="poison pill"))
    dovecot.deliver(mail_user, b"To: support@example.com\r\nSubject: no sender\r\n\r\nhi\r\n")
    deliver(dovecot, mail_user, 1, subject="After")
    flaky = PoisonWrites(db)
    job = replace(pop3_job(db, dovecot, mail_user, leave_on_server=False), db=flaky)

    report = sync_pop3(job)

    # Stored first, so removed from the server; the poison one waits for its retries.
    assert (report.stored, report.quarantined, report.removed_from_server) == (4, 1, 4)
    assert (history(db), dovecot.count(mail_user)) == (2, 0)
    while reprocess_pending(flaky, job.options):
        pass
    assert (history(db), quarantined(db)) == (2, 2)
    with db.read() as session:
        reasons = sorted(session.scalars(select(QuarantineEntry.reason_code)))
    assert reasons == ["no-sender", "processing-failed"]
    assert sync_pop3(job).stored == 0


def test_long_lines_and_leading_dots_arrive_byte_for_byte(
    db: Database, dovecot: Dovecot, mail_user: MailUser
) -> None:
    long_line = b"x" * 5000
    body = b"Hello\r\n.hidden dot\r\n..two dots\r\n.\r\n" + long_line + b"\r\nend\r\n"
    raw = b"From: alice@customer.example\r\nSubject: odd lines\r\n\r\n" + body
    dovecot.deliver(mail_user, raw)
    job = pop3_job(db, dovecot, mail_user)

    assert sync_pop3(job).stored == 1

    with db.read() as session:
        receipt = session.scalars(select(InboundReceipt)).one()
        stored = get_blob(session, receipt.raw_sha256)
    assert stored.endswith(raw)  # after Dovecot's Return-Path and Delivered-To


def test_xoauth2_login(
    db: Database, dovecot: Dovecot, mail_user: MailUser, oauth_tokens: TokenIssuer
) -> None:
    deliver(dovecot, mail_user, 1)
    job = pop3_job(db, dovecot, mail_user)
    token = oauth_tokens.issue(mail_user.address)
    endpoint = replace(job.endpoint, auth="oauth2", secret=token)
    assert sync_pop3(replace(job, endpoint=endpoint)).stored == 1


def test_a_refused_login_says_so_without_the_password(
    db: Database, dovecot: Dovecot, mail_user: MailUser
) -> None:
    job = pop3_job(db, dovecot, mail_user)
    wrong = replace(job.endpoint, secret="wrong-canary-password")
    with pytest.raises(MailboxError, match="refused the login") as failed:
        sync_pop3(replace(job, endpoint=wrong))
    assert "wrong-canary-password" not in str(failed.value)


def test_starttls_is_never_downgraded_to_plain_text(
    db: Database, dovecot_without_tls: Dovecot
) -> None:
    user = dovecot_without_tls.add_user()
    deliver(dovecot_without_tls, user, 1)
    job = pop3_job(
        db, dovecot_without_tls, user, port=dovecot_without_tls.ports.pop3, security="starttls"
    )
    with pytest.raises(MailboxError, match="does not offer STLS"):
        sync_pop3(job)
    assert history(db) == 0


def test_the_runner_applies_the_account_retention(
    db_url: str, tmp_path: Path, dovecot: Dovecot, mail_user: MailUser
) -> None:
    ctx = build_context(
        Settings(home=tmp_path / "home", database_url=db_url, tls_ca_file=dovecot.ca_file)
    )
    doc = {
        "role": "global",
        "name": "POP3 inbox",
        "email": mail_user.address,
        "incoming": {
            "protocol": "pop3",
            "host": "127.0.0.1",
            "port": dovecot.ports.pop3s,
            "security": "tls",
            "password": mail_user.password,
            "leave_on_server": False,
        },
    }
    with ctx.db.write() as session:
        account, _ = service.create_account(
            session, AccountCreate.model_validate(doc), keys=ctx.keys, allow_private=True
        )
        add_channel(session, address="pop@example.com", account_id=account.id)
        account_id = account.id
    deliver(dovecot, mail_user, 2)

    report = sync_account(ctx, account_id)

    assert (report.stored, report.removed_from_server) == (2, 2)
    assert dovecot.count(mail_user) == 0


# --- initial import: "archive" and "from_now" ---------------------------------------------


def case_of_each(db: Database) -> dict[str, tuple[str, list[str]]]:
    """Subject of each inbound message -> (its case's status, the rules behind it)."""
    with db.read() as session:
        rows = session.execute(
            select(Message.subject, Case.status, Message.rule_hits)
            .join(Case, Case.id == Message.case_id)
            .where(Message.direction == "inbound")
        )
        return {subject: (status, [h["rule"] for h in hits]) for subject, status, hits in rows}


def archived(db: Database) -> list[str]:
    """Subjects on closed cases opened by the archive import."""
    found = case_of_each(db).items()
    return sorted(
        s for s, (status, rules) in found if "import-archive" in rules and status == "closed"
    )


def normal(db: Database) -> list[str]:
    found = case_of_each(db).items()
    return sorted(
        s for s, (status, rules) in found if "import-archive" not in rules and status == "new"
    )


def test_initial_import_archive(db: Database, dovecot: Dovecot, mail_user: MailUser) -> None:
    deliver(dovecot, mail_user, 3, subject="Old")
    job = pop3_job(db, dovecot, mail_user, initial_import="archive")

    report = sync_pop3(job)
    assert (report.stored, report.archived, report.skipped) == (3, 3, 0)

    deliver(dovecot, mail_user, 1, subject="New")
    later = sync_pop3(job)
    assert (later.stored, later.archived) == (1, 0)
    assert archived(db) == ["Old 0", "Old 1", "Old 2"]
    assert normal(db) == ["New 0"]
    assert dovecot.count(mail_user) == 4


def test_initial_import_from_now_never_fetches_or_removes_what_was_there(
    db: Database, dovecot: Dovecot, mail_user: MailUser
) -> None:
    """Even without a copy on the server: only what casemail stored is ever removed."""
    deliver(dovecot, mail_user, 3, subject="Old")
    job = pop3_job(db, dovecot, mail_user, initial_import="from_now", leave_on_server=False)

    report = sync_pop3(job)
    assert (report.stored, report.skipped, report.removed_from_server) == (0, 3, 0)
    assert (counted(db, InboundReceipt), dovecot.count(mail_user)) == (0, 3)

    deliver(dovecot, mail_user, 1, subject="New")
    later = sync_pop3(job)
    assert (later.stored, later.skipped, later.removed_from_server) == (1, 0, 1)
    assert normal(db) == ["New 0"]
    assert dovecot.count(mail_user) == 3  # the three old ones, untouched
    again = sync_pop3(job)
    assert (again.stored, again.removed_from_server, dovecot.count(mail_user)) == (0, 0, 3)


@pytest.mark.parametrize("mode", ["archive", "from_now"])
def test_initial_import_on_a_server_without_uidl(
    db: Database, dovecot: Dovecot, mail_user: MailUser, proxies: list[CutProxy], mode: str
) -> None:
    deliver(dovecot, mail_user, 2, subject="Old")
    proxy = cut_proxy(proxies, dovecot, refuse=(b"UIDL",))
    job = pop3_job(db, dovecot, mail_user, port=proxy.port, security="none", initial_import=mode)

    first = sync_pop3(job)
    deliver(dovecot, mail_user, 1, subject="New")
    later = sync_pop3(job)

    if mode == "archive":
        assert (first.stored, first.archived, later.stored, later.archived) == (2, 2, 1, 0)
        assert archived(db) == ["Old 0", "Old 1"]
    else:
        assert (first.stored, first.skipped, later.stored, later.skipped) == (0, 2, 1, 0)
    assert normal(db) == ["New 0"]
    assert sync_pop3(job).stored == 0


def test_an_interrupted_archive_import_resumes_as_archive(
    db: Database, dovecot: Dovecot, mail_user: MailUser, proxies: list[CutProxy]
) -> None:
    deliver(dovecot, mail_user, 3, subject="Old")
    proxy = cut_proxy(proxies, dovecot, cut_on=b"RETR 2")
    job = pop3_job(
        db, dovecot, mail_user, port=proxy.port, security="none", initial_import="archive"
    )
    with pytest.raises(MailboxError, match="while fetching message 2"):
        sync_pop3(job)
    assert history(db) == 1
    deliver(dovecot, mail_user, 1, subject="Arrived before the resume")

    proxy.cut_on = None
    report = sync_pop3(job)

    assert (report.stored, report.archived) == (3, 2)
    assert archived(db) == ["Old 0", "Old 1", "Old 2"]
    assert normal(db) == ["Arrived before the resume 0"]


def test_reset_counter_after_from_now_downloads_everything_as_normal_mail(
    db: Database, dovecot: Dovecot, mail_user: MailUser
) -> None:
    deliver(dovecot, mail_user, 2, subject="Old")
    job = pop3_job(db, dovecot, mail_user, initial_import="from_now")
    assert sync_pop3(job).skipped == 2
    deliver(dovecot, mail_user, 1, subject="New")
    assert sync_pop3(job).stored == 1

    assert reset_counter(db, job.account_id) == 1  # the one stored; marks are not counted
    report = sync_pop3(job)

    assert (report.stored, report.duplicates, report.skipped) == (2, 1, 0)
    assert normal(db) == ["New 0", "Old 0", "Old 1"]
    assert sync_pop3(job).stored == 0


# --- delete_when_deleted: a case deleted in casemail takes its mail off the server ------


def server_subjects(dovecot: Dovecot, user: MailUser) -> list[str]:
    with dovecot.imap(user) as client:
        client.select_folder("INBOX", readonly=True)
        found = client.fetch(client.search("ALL"), ["ENVELOPE"])
        return sorted(data[b"ENVELOPE"].subject.decode() for data in found.values())


@pytest.mark.parametrize("delete_when_deleted", [True, False])
def test_deleting_a_case_removes_exactly_its_mail_from_the_server(
    api: Api, dovecot: Dovecot, mail_user: MailUser, delete_when_deleted: bool
) -> None:
    api.context.settings.tls_ca_file = dovecot.ca_file
    doc = {
        "role": "global",
        "name": "POP3 inbox",
        "email": mail_user.address,
        "incoming": {
            "protocol": "pop3",
            "host": "127.0.0.1",
            "port": dovecot.ports.pop3s,
            "security": "tls",
            "password": mail_user.password,
            "delete_when_deleted": delete_when_deleted,
        },
    }
    created = api.post("/api/v1/accounts", json=doc)
    assert created.status_code == 201, created.text
    account_id = created.json()["id"]
    assert created.json()["incoming"]["delete_when_deleted"] is delete_when_deleted
    channel = {"address": "pop@example.com", "account_id": account_id}
    assert api.post("/api/v1/channels", json=channel).status_code == 201
    deliver(dovecot, mail_user, 3)
    assert sync_account(api.context, account_id).stored == 3
    [case] = [c for c in api.get("/api/v1/cases").json() if c["subject"] == "Question 1"]

    assert api.delete(f"/api/v1/cases/{case['id']}").status_code == 204
    report = sync_account(api.context, account_id)

    if delete_when_deleted:
        assert report.removed_from_server == 1
        assert server_subjects(dovecot, mail_user) == ["Question 0", "Question 2"]
    else:
        assert report.removed_from_server == 0
        assert server_subjects(dovecot, mail_user) == ["Question 0", "Question 1", "Question 2"]
    assert sync_account(api.context, account_id).removed_from_server == 0
    assert len(removed(api.db)) == int(delete_when_deleted)
    assert history(api.db) == 3  # the deleted case's mail stays stored
