"""Stage: tell people. Quarantine notices to the channel's admins (through the system
account), acknowledgements of new cases and rejection notices to senders (through the
channel's account, else the global one). All of it goes through the outbox.

Loop safety (RFC 3834 section 2): nothing here ever answers automatic mail — only mail
classified ``normal`` gets an acknowledgement or a rejection notice — and everything sent is
marked ``Auto-Submitted`` and carries our loop header, so it is recognised if it comes back.
Quarantine notices are throttled per channel: a flood of held mail is one notice, not one
per message.
"""

from __future__ import annotations

import logging
from datetime import timedelta

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from casemail.accounts.sending import company_account
from casemail.channels.rules import load_rules
from casemail.db.models import Account, Channel, OutboxEntry, QuarantineEntry, User
from casemail.db.types import utcnow
from casemail.identity import Identity, load_identity, subject_tag
from casemail.ingest.types import Address
from casemail.outbound.compose import Draft
from casemail.outbound.queue import enqueue

log = logging.getLogger("casemail.ingest")

NOTICE_EVERY = timedelta(minutes=10)


def notice_subject(channel: Channel, sender: str | None = None) -> str:
    """One subject per channel (and per copied sender): the throttle counts notices by it."""
    if sender is not None:
        return f"casemail: your mail to {channel.address} is held for review ({sender})"
    return f"casemail: mail held in quarantine for {channel.address}"


def notify_quarantine(
    session: Session, channel: Channel, entry: QuarantineEntry, *, person: str | None = None
) -> None:
    """Queue a notice to the channel's admins, unless one went out in the last minutes;
    with ``cc_sender_on_quarantine``, a notice about a person's message copies them."""
    rules = load_rules(channel.rules)
    if not rules.notify_quarantine:
        return
    copied = (person,) if person and rules.cc_sender_on_quarantine else ()
    subject = notice_subject(channel, copied[0] if copied else None)
    since = utcnow() - NOTICE_EVERY
    recent = select(OutboxEntry.id).where(
        OutboxEntry.kind == "notice",
        OutboxEntry.subject == subject,
        OutboxEntry.created_at >= since,
    )
    if session.scalar(recent.limit(1)) is not None:
        return
    admins = _admin_addresses(session, channel)
    held = session.scalar(
        select(func.count()).where(
            QuarantineEntry.channel_id == channel.id,
            QuarantineEntry.state == "held",
        )
    )
    # Product notices go through the system account only (never as the office's sender).
    account = company_account(session, "system", channel.company_id)
    draft = Draft(
        kind="notice",
        from_address=account.email if account else channel.address,
        from_name="casemail",
        to=tuple(admins),
        cc=copied,
        subject=subject,
        text=_notice_text(channel, entry, held or 1, copied=bool(copied)),
        auto_submitted="auto-generated",
    )
    identity = load_identity(session)
    queued = enqueue(
        session,
        draft,
        identity=identity,
        account=account if admins else None,
        channel_id=None,
        account_role="system",
        company_id=channel.company_id,
    )
    if not admins:
        queued.last_error = (
            f"No one to notify: set the error address of channel {channel.address} "
            "or give a user the admin role."
        )
    log.info("quarantine notice for channel %s queued (outbox %s)", channel.id, queued.id)


def _admin_addresses(session: Session, channel: Channel) -> list[str]:
    if channel.error_address:
        return [channel.error_address]
    query = select(User.email).where(
        User.company_id == channel.company_id, User.role == "admin", User.active.is_(True)
    )
    return list(session.scalars(query.order_by(User.id)))


def _notice_text(
    channel: Channel, entry: QuarantineEntry, held: int, *, copied: bool = False
) -> str:
    if copied:
        # The sender reads this too: the reason, nothing about other people's mail.
        return (
            f"Your message to {channel.address} did not become a case and is held for "
            f"review by the team.\n\nReason: {entry.reason}\n\n"
            "You do not need to send it again: someone will look at it.\n"
        )
    return (
        f"Mail sent to {channel.address} did not become a case and is held in quarantine.\n\n"
        f"Latest: {entry.reason}\n"
        f"Held for this channel now: {held} message(s).\n\n"
        "Review them in casemail (GET /api/v1/quarantine). Held mail is purged after "
        f"{channel.purge_days} days.\n"
    )


def acknowledge(
    session: Session,
    *,
    identity: Identity,
    channel: Channel,
    case_id: int,
    sender: Address,
    subject: str,
    in_reply_to: str | None,
) -> None:
    """RFC 3834 section 3: an automatic answer, in reply to the message, to its sender."""
    tag = subject_tag(channel.subject_tag_prefix, case_id)
    draft = Draft(
        kind="acknowledgement",
        from_address=channel.address,
        from_name=channel.name,
        to=(sender.email,),
        subject=f"{tag} {subject}".strip(),
        text=(
            f"We have received your message and opened case #{case_id}.\n"
            "Reply to this email to add to it; keep the case number in the subject.\n"
        ),
        case_id=case_id,
        reply_to=identity.reply_address(channel.address, case_id),
        in_reply_to=in_reply_to,
        auto_submitted="auto-replied",
    )
    _answer(session, draft, identity=identity, channel=channel, on_case=True)


def reject(
    session: Session,
    *,
    identity: Identity,
    channel: Channel,
    sender: Address,
    subject: str,
    in_reply_to: str | None,
    reason: str,
) -> None:
    draft = Draft(
        kind="rejection",
        from_address=channel.address,
        from_name=channel.name,
        to=(sender.email,),
        subject=f"Not accepted: {subject}".strip(),
        text=f"Your message to {channel.address} was not accepted: {reason}\n",
        in_reply_to=in_reply_to,
        auto_submitted="auto-replied",
    )
    _answer(session, draft, identity=identity, channel=channel, on_case=False)


def _answer(
    session: Session, draft: Draft, *, identity: Identity, channel: Channel, on_case: bool
) -> None:
    """Queue an automatic answer to a sender through the channel's account (else the
    global one); ``on_case``: it also goes on the case's email history."""
    account = _channel_account(session, channel)
    enqueue(
        session,
        draft,
        identity=identity,
        account=account,
        channel_id=channel.id if on_case else None,
        account_role="global",
        company_id=channel.company_id,
    )


def _channel_account(session: Session, channel: Channel) -> Account | None:
    if channel.account_id is not None:
        account = session.get(Account, channel.account_id)
        if account is not None and account.outgoing_active and account.deactivated_at is None:
            return account
    return company_account(session, "global", channel.company_id)
