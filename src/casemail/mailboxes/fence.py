"""Fenced writes: a mailbox's bookkeeping is written only under the lease it was fetched with.

A worker holds a mailbox by a lease (``workers.leases``) whose ``fencing_token`` grows each
time the mailbox changes hands. A worker that stalled (a long pause, a lost database link)
may still be fetching after its lease ran out and another worker took the mailbox. Each of
its writes (messages stored, the UID mark advanced, a new UIDVALIDITY) therefore first
checks, in the same transaction, that the lease still carries its token and has not
expired; if not, the transaction rolls back and the run ends with ``LeaseLost``, before the
server is told anything (no flag, no move, no DELE).

On PostgreSQL the check locks the lease row (``FOR SHARE``) until the commit, so a take-over
waits for a write that passed the check, and a write waits for a take-over under way: the
two never interleave. SQLite serialises every write transaction anyway.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session

from casemail.db.models import MailboxLease
from casemail.db.types import database_now


class LeaseLost(RuntimeError):
    """This worker no longer holds the mailbox's lease: another one fetches it now."""


@dataclass(frozen=True)
class Fence:
    account_id: int
    token: int


def check_fence(session: Session, fence: Fence | None) -> None:
    """Raise ``LeaseLost`` unless the lease still carries ``fence.token`` and runs. ``None``:
    a run outside the workers (``casemail sync``, tests), which holds no lease."""
    if fence is None:
        return
    now = database_now(session)
    held = session.scalar(
        select(MailboxLease.fencing_token)
        .where(
            MailboxLease.account_id == fence.account_id,
            MailboxLease.fencing_token == fence.token,
            MailboxLease.expires_at > now,
        )
        .with_for_update(read=True)
    )
    if held is None:
        raise LeaseLost(
            f"account {fence.account_id}: the lease with fencing token {fence.token} is no "
            "longer held (expired or taken by another worker); nothing was written"
        )
