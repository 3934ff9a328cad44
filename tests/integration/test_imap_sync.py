"""IMAP sync against a real Dovecot: by UID, several folders, never by \\Seen, the three
post-processing choices, UIDVALIDITY changes, the initial import modes. Every test runs on
SQLite and PostgreSQL."""

from __future__ import annotations

from dataclasses import replace

import pytest
from imapclient import DELETED, SEEN
from sqlalchemy import select

from casemail.db import Database
from casemail.db.models import Case, Message
from casemail.mailboxes.errors import MailboxError
from casemail.mailboxes.imap_sync import sync_imap
from casemail.mailboxes.job import Progress
from casemail.mailboxes.store import folder_state
from tests.imapsupport import counts, flags, imap_job
from tests.mailservers import Dovecot, DropProxy, MailUser, add_user_with_capabilities
from tests.support import sample_message, wire_bytes


def test_initial_sync_then_nothing_then_only_the_new_message(
    db: Database, dovecot: Dovecot, mail_user: MailUser
) -> None:
    for n in range(5):
        dovecot.deliver(mail_user, sample_message(subject=f"Question {n}"))
    seen: list[Progress] = []
    job = imap_job(db, dovecot, mail_user, batch_size=2, on_progress=seen.append)

    report = sync_imap(job)
    assert (report.stored, report.duplicates, report.quarantined) == (5, 0, 0)
    assert report.folders == {"INBOX": 5}
    assert report.uidvalidity_changed == []
    assert counts(db).history == 5
    assert folder_state(db, job.account_id, "INBOX").last_uid == 5
    assert [(p.done, p.total) for p in seen] == [(0, 5), (2, 5), (4, 5), (5, 5)]

    again = sync_imap(job)
    assert (again.stored, again.duplicates) == (0, 0)  # nothing fetched at all

    dovecot.deliver(mail_user, sample_message(subject="One more"))
    third = sync_imap(job)
    assert (third.stored, third.duplicates) == (1, 0)
    assert folder_state(db, job.account_id, "INBOX").last_uid == 6
    assert counts(db).history == 6


def test_several_folders(db: Database, dovecot: Dovecot, mail_user: MailUser) -> None:
    dovecot.create_folder(mail_user, "Support", "Billing")
    dovecot.deliver(mail_user, sample_message(subject="In the inbox"))
    for n in range(3):
        dovecot.append(mail_user, "Support", sample_message(subject=f"Support {n}"))
    dovecot.append(mail_user, "Billing", sample_message(subject="Invoice"))
    job = imap_job(db, dovecot, mail_user, folders=("INBOX", "Support", "Billing"))

    report = sync_imap(job)
    assert report.stored == 5
    assert report.folders == {"INBOX": 1, "Support": 3, "Billing": 1}
    last = {f: folder_state(db, job.account_id, f).last_uid for f in report.folders}
    assert last == {"INBOX": 1, "Support": 3, "Billing": 1}

    dovecot.append(mail_user, "Billing", sample_message(subject="Second invoice"))
    assert sync_imap(job).stored == 1
    assert counts(db).history == 6


def test_a_message_read_by_another_client_is_still_fetched(
    db: Database, dovecot: Dovecot, mail_user: MailUser
) -> None:
    dovecot.deliver(mail_user, sample_message(subject="First"))
    job = imap_job(db, dovecot, mail_user)
    assert sync_imap(job).stored == 1
    dovecot.deliver(mail_user, sample_message(subject="Read on a phone before casemail polls"))
    with dovecot.imap(mail_user) as phone:
        phone.select_folder("INBOX")
        phone.add_flags([2], [SEEN])
    assert SEEN in flags(dovecot, mail_user)[2]

    assert sync_imap(job).stored == 1
    assert counts(db).history == 2


def test_after_fetch_none_leaves_the_mailbox_untouched(
    db: Database, dovecot: Dovecot, mail_user: MailUser
) -> None:
    for n in range(3):
        dovecot.deliver(mail_user, sample_message(subject=f"Untouched {n}"))
    before = flags(dovecot, mail_user)
    assert sync_imap(imap_job(db, dovecot, mail_user)).stored == 3
    assert flags(dovecot, mail_user) == before
    assert all(SEEN not in f for f in before.values())


def test_after_fetch_seen_flags_what_was_stored(
    db: Database, dovecot: Dovecot, mail_user: MailUser
) -> None:
    for n in range(3):
        dovecot.deliver(mail_user, sample_message(subject=f"Flag me {n}"))
    assert sync_imap(imap_job(db, dovecot, mail_user, after_fetch="seen")).stored == 3
    assert all(SEEN in f for f in flags(dovecot, mail_user).values())
    assert dovecot.count(mail_user) == 3


def test_after_fetch_move_moves_what_was_stored(
    db: Database, dovecot: Dovecot, mail_user: MailUser
) -> None:
    dovecot.create_folder(mail_user, "Archive")
    for n in range(4):
        dovecot.deliver(mail_user, sample_message(subject=f"Move me {n}"))
    job = imap_job(db, dovecot, mail_user, after_fetch="move", move_to="Archive", batch_size=3)
    assert sync_imap(job).stored == 4
    assert (dovecot.count(mail_user), dovecot.count(mail_user, "Archive")) == (0, 4)
    assert all(SEEN not in f for f in flags(dovecot, mail_user, "Archive").values())

    dovecot.deliver(mail_user, sample_message(subject="Later"))
    assert sync_imap(job).stored == 1
    assert (dovecot.count(mail_user), dovecot.count(mail_user, "Archive")) == (0, 5)
    assert counts(db).history == 5


def test_move_without_move_capability_expunges_only_its_own_messages(
    db: Database, dovecot: Dovecot
) -> None:
    """COPY, \\Deleted and UID EXPUNGE (RFC 4315): a message another client marked \\Deleted
    stays; a plain EXPUNGE would have removed it too."""
    user = add_user_with_capabilities(dovecot, "IMAP4rev1", "UIDPLUS")
    dovecot.create_folder(user, "Archive")
    dovecot.deliver(user, sample_message(subject="Kept in the inbox, deleted by a colleague"))
    keep = imap_job(db, dovecot, user)
    assert sync_imap(keep).stored == 1
    with dovecot.imap(user) as colleague:
        colleague.select_folder("INBOX")
        colleague.add_flags([1], [DELETED])
    for n in range(2):
        dovecot.deliver(user, sample_message(subject=f"Move me {n}"))

    move = replace(keep, after_fetch="move", move_to="Archive")
    assert sync_imap(move).stored == 2
    assert dovecot.count(user, "Archive") == 2
    assert flags(dovecot, user) == {1: {DELETED}}  # still there, still only \Deleted


def test_move_is_refused_where_it_would_expunge_other_clients_mail(
    db: Database, dovecot: Dovecot
) -> None:
    user = add_user_with_capabilities(dovecot, "IMAP4rev1")
    dovecot.create_folder(user, "Archive")
    dovecot.deliver(user, sample_message())
    job = imap_job(db, dovecot, user, after_fetch="move", move_to="Archive")
    with pytest.raises(MailboxError, match=r"neither MOVE .* nor UIDPLUS"):
        sync_imap(job)
    assert counts(db).receipts == 0  # refused before anything was fetched
    assert dovecot.count(user) == 1


def test_uidvalidity_change_refetches_without_duplicates(
    db: Database, dovecot: Dovecot, mail_user: MailUser
) -> None:
    dovecot.create_folder(mail_user, "Support")
    raws = [wire_bytes(sample_message(subject=f"Ticket {n}")) for n in range(3)]
    for raw in raws:
        dovecot.append(mail_user, "Support", raw)
    job = imap_job(db, dovecot, mail_user, folders=("Support",))
    assert sync_imap(job).stored == 3
    old = folder_state(db, job.account_id, "Support")

    # The folder is deleted and made again (a restore, a server migration): new UIDVALIDITY,
    # the same messages, and one that is really new.
    with dovecot.imap(mail_user) as admin:
        admin.delete_folder("Support")
        admin.create_folder("Support")
    for raw in [*raws, wire_bytes(sample_message(subject="Really new"))]:
        dovecot.append(mail_user, "Support", raw)

    report = sync_imap(job)
    assert report.uidvalidity_changed == ["Support"]
    assert (report.stored, report.duplicates) == (1, 3)
    new = folder_state(db, job.account_id, "Support")
    assert new.uidvalidity != old.uidvalidity
    assert new.last_uid == 4
    after = counts(db)
    assert (after.history, after.distinct_message_ids) == (4, 4)
    assert sync_imap(job).uidvalidity_changed == []


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


def assert_archived(found: tuple[str, list[str]]) -> None:
    assert found[0] == "closed"
    assert "import-archive" in found[1]


def assert_normal(found: tuple[str, list[str]]) -> None:
    assert found[0] == "new"
    assert "import-archive" not in found[1]


def test_initial_import_archive_closes_what_was_there_and_later_mail_is_normal(
    db: Database, dovecot: Dovecot, mail_user: MailUser
) -> None:
    for n in range(3):
        dovecot.deliver(mail_user, sample_message(subject=f"Old {n}"))
    job = imap_job(db, dovecot, mail_user, initial_import="archive", batch_size=2)

    report = sync_imap(job)
    assert (report.stored, report.archived, report.skipped) == (3, 3, 0)
    assert folder_state(db, job.account_id, "INBOX").import_until_uid == 3

    dovecot.deliver(mail_user, sample_message(subject="New after the first sync"))
    later = sync_imap(job)
    assert (later.stored, later.archived) == (1, 0)
    cases = case_of_each(db)
    for n in range(3):
        assert_archived(cases[f"Old {n}"])
    assert_normal(cases["New after the first sync"])


def test_initial_import_from_now_leaves_what_was_there_untouched(
    db: Database, dovecot: Dovecot, mail_user: MailUser
) -> None:
    for n in range(3):
        dovecot.deliver(mail_user, sample_message(subject=f"Old {n}"))
    job = imap_job(db, dovecot, mail_user, initial_import="from_now", after_fetch="seen")

    report = sync_imap(job)
    assert (report.stored, report.skipped) == (0, 3)
    assert counts(db).receipts == 0  # nothing fetched, nothing stored
    assert folder_state(db, job.account_id, "INBOX").last_uid == 3
    assert all(SEEN not in f for f in flags(dovecot, mail_user).values())

    dovecot.deliver(mail_user, sample_message(subject="New after the first sync"))
    later = sync_imap(job)
    assert (later.stored, later.skipped) == (1, 0)
    assert list(case_of_each(db)) == ["New after the first sync"]
    assert_normal(case_of_each(db)["New after the first sync"])
    seen = {uid for uid, f in flags(dovecot, mail_user).items() if SEEN in f}
    assert seen == {4}  # only the one casemail stored
    assert sync_imap(job).stored == 0


def test_an_interrupted_archive_import_resumes_as_archive(
    db: Database, dovecot: Dovecot, mail_user: MailUser
) -> None:
    for n in range(6):
        dovecot.deliver(mail_user, sample_message(subject=f"Old {n}"))
    with DropProxy(dovecot.ports.imaps) as proxy:

        def link_dies_after_the_first_batch(progress: Progress) -> None:
            if progress.done == 2:
                proxy.freeze()

        job = imap_job(
            db,
            dovecot,
            mail_user,
            port=proxy.port,
            read_timeout=1,
            batch_size=2,
            initial_import="archive",
            on_progress=link_dies_after_the_first_batch,
        )
        with pytest.raises(MailboxError):
            sync_imap(job)
    # The batch after the first may have been fetched ahead before the link froze.
    first_run = counts(db).history
    assert first_run in (2, 4)
    dovecot.deliver(mail_user, sample_message(subject="Arrived before the resume"))

    direct = replace(job.endpoint, port=dovecot.ports.imaps)
    report = sync_imap(replace(job, endpoint=direct, on_progress=None))

    assert (report.stored, report.archived) == (7 - first_run, 6 - first_run)
    cases = case_of_each(db)
    for n in range(6):
        assert_archived(cases[f"Old {n}"])
    assert_normal(cases["Arrived before the resume"])
    assert counts(db).accounted == counts(db).distinct_message_ids == 7


def test_after_a_uidvalidity_change_an_archived_folder_gets_normal_mail(
    db: Database, dovecot: Dovecot, mail_user: MailUser
) -> None:
    """Not a new first sync: the folder was imported already; what was stored is recognised
    by content, the rest is normal mail."""
    dovecot.create_folder(mail_user, "Support")
    raws = [wire_bytes(sample_message(subject=f"Old {n}")) for n in range(2)]
    for raw in raws:
        dovecot.append(mail_user, "Support", raw)
    job = imap_job(db, dovecot, mail_user, folders=("Support",), initial_import="archive")
    assert sync_imap(job).archived == 2

    with dovecot.imap(mail_user) as admin:
        admin.delete_folder("Support")
        admin.create_folder("Support")
    for raw in [*raws, wire_bytes(sample_message(subject="Really new"))]:
        dovecot.append(mail_user, "Support", raw)

    report = sync_imap(job)
    assert report.uidvalidity_changed == ["Support"]
    assert (report.stored, report.duplicates, report.archived) == (1, 2, 0)
    assert folder_state(db, job.account_id, "Support").import_until_uid == 0
    assert_normal(case_of_each(db)["Really new"])
