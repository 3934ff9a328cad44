"""One sync run of one account, with its health recorded; which accounts are due.

Failures are data: a run that fails leaves the account in state ``error`` with the reason
in plain words and a growing back-off, and never touches other accounts.
"""

from __future__ import annotations

import logging
from datetime import timedelta
from typing import Any

from sqlalchemy import delete, func, or_, select, update

from casemail.accounts.endpoints import incoming_endpoint
from casemail.accounts.service import stored_secrets
from casemail.bootstrap import AppContext
from casemail.db.engine import Database
from casemail.db.models import Account, Channel, MailboxFolder, MailboxItem
from casemail.db.types import utcnow
from casemail.mailboxes.fence import Fence, LeaseLost
from casemail.mailboxes.job import MailboxJob, Progress, SyncReport
from casemail.oauth.tokens import TokenError, ensure_access_token
from casemail.webhooks.events import Event, emit

log = logging.getLogger("casemail.mailboxes")

MAX_BACKOFF = timedelta(hours=1)


class NotSyncable(ValueError):
    """The account cannot be fetched: no incoming server, inactive, or no channel."""


def build_job(
    ctx: AppContext,
    account_id: int,
    *,
    on_progress: Any = None,
    batch_size: int = 500,
    fence: Fence | None = None,
) -> MailboxJob:
    """The job with a login that works now: an OAuth2 access token is refreshed first if it
    is about to expire (``TokenError`` when there is none to be had)."""
    ensure_access_token(ctx.db, ctx.keys, account_id)
    with ctx.db.read() as session:
        account = session.get(Account, account_id)
        if account is None:
            raise NotSyncable(f"no account {account_id}")
        incoming = account.settings.get("incoming")
        if not incoming or account.deactivated_at is not None:
            raise NotSyncable(f"account {account_id} has no active incoming server")
        channel_id = session.scalar(
            select(Channel.id).where(Channel.account_id == account_id, Channel.active.is_(True))
        )
        if channel_id is None:
            raise NotSyncable(
                f"no channel fetches from account {account_id}: add one with "
                f"`casemail channel add --address ADDRESS --account {account_id}`"
            )
        secrets = stored_secrets(account, ctx.keys)
        endpoint = incoming_endpoint(account, secrets, ca_file=ctx.settings.tls_ca_file)
    return MailboxJob(
        db=ctx.db,
        account_id=account_id,
        channel_id=channel_id,
        endpoint=endpoint,
        options=ctx.ingest_options,
        after_fetch=incoming.get("after_fetch", "none"),
        move_to=incoming.get("move_to"),
        leave_on_server=incoming.get("leave_on_server", True),
        delete_after_days=incoming.get("delete_after_days"),
        delete_when_deleted=incoming.get("delete_when_deleted", False),
        initial_import=incoming.get("initial_import", "all"),
        batch_size=batch_size,
        on_progress=on_progress,
        fence=fence,
    )


def sync_account(
    ctx: AppContext, account_id: int, *, on_progress: Any = None, fence: Fence | None = None
) -> SyncReport:
    """Run one sync and record the account's health; re-raises the failure after recording.
    A lost lease (``LeaseLost``) is no failure of the account: its new owner records."""
    try:
        job = build_job(ctx, account_id, on_progress=on_progress, fence=fence)
    except TokenError as exc:
        record_failure(ctx.db, account_id, exc)
        raise
    _set_state(ctx.db, account_id, "syncing")
    try:
        report = _run(job)
    except LeaseLost:
        raise
    except Exception as exc:
        record_failure(ctx.db, account_id, exc)
        raise
    record_success(ctx.db, account_id)
    return report


def _run(job: MailboxJob) -> SyncReport:
    if job.endpoint.protocol == "imap":
        from casemail.mailboxes.imap_sync import sync_imap

        return sync_imap(job)
    from casemail.mailboxes.pop3_sync import sync_pop3

    return sync_pop3(job)


def _interval(account: Account) -> timedelta:
    incoming = account.settings.get("incoming") or {}
    return timedelta(seconds=int(incoming.get("poll_interval_seconds", 60)))


def _set_state(db: Database, account_id: int, state: str) -> None:
    with db.write() as session:
        session.execute(update(Account).where(Account.id == account_id).values(sync_state=state))


def record_success(db: Database, account_id: int) -> None:
    with db.write() as session:
        account = session.get(Account, account_id)
        if account is None:
            return
        now = utcnow()
        account.sync_state = "ok"
        account.last_sync_ok_at = now
        account.sync_failures = 0
        account.next_sync_at = now + _interval(account)


def record_failure(db: Database, account_id: int, exc: BaseException) -> None:
    """Back off 1, 2, 4 … poll intervals, at most an hour; the reason in plain words."""
    message = str(exc) or exc.__class__.__name__
    with db.write() as session:
        account = session.get(Account, account_id)
        if account is None:
            return
        now = utcnow()
        if account.sync_state != "error":
            # Healthy (or new) until now: tell the company's webhooks once, not every retry.
            details = {"id": account.id, "name": account.name, "email": account.email}
            data = {"account": details, "error": message}
            emit(session, [Event(account.company_id, "account.unhealthy", data)])
        account.sync_state = "error"
        account.sync_failures += 1
        account.last_sync_error = message[:2000]
        account.last_sync_error_at = now
        delay = _interval(account) * (2 ** min(account.sync_failures - 1, 10))
        account.next_sync_at = now + min(delay, MAX_BACKOFF)
    log.warning("account %s: sync failed: %s", account_id, message)


def due_accounts(db: Database) -> list[int]:
    """Active incoming accounts with a channel whose next sync time has come."""
    now = utcnow()
    with db.read() as session:
        query = (
            select(Account.id)
            .join(Channel, Channel.account_id == Account.id)
            .where(
                Account.incoming_active.is_(True),
                Account.deactivated_at.is_(None),
                Channel.active.is_(True),
                or_(Account.next_sync_at.is_(None), Account.next_sync_at <= now),
            )
            .order_by(Account.next_sync_at.is_not(None), Account.next_sync_at, Account.id)
        )
        return list(session.scalars(query))


def sync_now(db: Database, account_id: int) -> None:
    """Ask the workers to sync this account at their next pass."""
    with db.write() as session:
        session.execute(
            update(Account).where(Account.id == account_id).values(next_sync_at=utcnow())
        )


def reset_counter(db: Database, account_id: int) -> int:
    """ "Reset mailbox counter": forget what was fetched so everything is downloaded again;
    messages already stored are recognised by Message-ID and content and not stored twice.

    "Everything" includes what an initial import ``from_now`` left alone: the folders keep
    their first sync as decided (``import_until_uid`` 0, nothing to skip or archive), so
    the re-download is ``all``: those messages become normal cases, and the reset never
    starts a new "from now" that would skip again. Returns how many fetched-message
    records were forgotten (messages the initial import only marked are not counted)."""
    with db.write() as session:
        mine = MailboxItem.account_id == account_id
        stored = mine & MailboxItem.inbound_id.is_not(None)
        forgotten = session.scalar(select(func.count()).select_from(MailboxItem).where(stored))
        session.execute(delete(MailboxItem).where(mine))
        session.execute(
            update(MailboxFolder)
            .where(MailboxFolder.account_id == account_id)
            .values(
                uidvalidity=None,
                last_uid=0,
                messages_done=0,
                messages_total=None,
                import_until_uid=0,
            )
        )
        session.execute(
            update(Account).where(Account.id == account_id).values(next_sync_at=utcnow())
        )
    return int(forgotten or 0)


def progress_printer(width: int = 40) -> Any:
    """A plain text progress bar for the CLI."""
    import sys

    def show(progress: Progress) -> None:
        total = max(progress.total, 1)
        filled = int(width * min(progress.done, total) / total)
        bar = "#" * filled + "." * (width - filled)
        sys.stderr.write(f"\r{progress.folder:<20} [{bar}] {progress.done}/{progress.total}")
        if progress.done >= progress.total:
            sys.stderr.write("\n")
        sys.stderr.flush()

    return show
