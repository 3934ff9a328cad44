"""Send from a case, and the outbox commands (reset, retry, cancel, suspend, resume).

The sending account: the one the agent picks (if they may use it), else the agent's
personal default, else their team's, else the company's global account. The message
threads onto the case: In-Reply-To and References from the message answered (by default
the newest inbound one), the case's subject tag, the reply token as Reply-To.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from email_validator import EmailNotValidError, validate_email
from sqlalchemy import select
from sqlalchemy.orm import Session

from casemail.accounts.endpoints import sender_address
from casemail.accounts.sending import account_for_user, company_account
from casemail.db.models import Account, Case, Channel, Installation, Message, OutboxEntry
from casemail.db.types import utcnow
from casemail.identity import load_identity, subject_tag, subject_tag_pattern
from casemail.outbound.compose import Draft, OutgoingAttachment
from casemail.outbound.queue import enqueue
from casemail.users.service import team_ids_of
from casemail.workers.wakeup import announce


class OutboundError(ValueError):
    """A request that cannot be sent as asked; the message says what to change."""


class NotFound(LookupError):
    pass


@dataclass(frozen=True)
class CaseMail:
    to: tuple[str, ...]
    subject: str | None = None
    text: str | None = None
    html: str | None = None
    cc: tuple[str, ...] = ()
    bcc: tuple[str, ...] = ()
    attachments: tuple[OutgoingAttachment, ...] = ()
    reply_to_message: int | None = None  # a message on the case (its id)
    account_id: int | None = None
    user_id: int | None = None


def send_from_case(
    session: Session, case_id: int, mail: CaseMail, *, give_up_after: timedelta
) -> OutboxEntry:
    case = session.get(Case, case_id)
    if case is None or case.deleted_at is not None:
        raise NotFound(f"Case {case_id} not found")
    if not mail.text and not mail.html:
        raise OutboundError("the message needs a text or an HTML body")
    to, cc, bcc = (
        _addresses(mail.to, "to"),
        _addresses(mail.cc, "cc"),
        _addresses(mail.bcc, "bcc"),
    )
    if not to:
        raise OutboundError("the message needs at least one recipient in 'to'")
    account = _account(session, mail)
    answered = _answered(session, case, mail.reply_to_message)
    identity = load_identity(session)
    channel = session.get_one(Channel, case.channel_id)
    outgoing = account.settings.get("outgoing") or {}
    draft = Draft(
        kind="agent",
        from_address=sender_address(account),
        from_name=outgoing.get("from_name") or account.name,
        to=to,
        cc=cc,
        bcc=bcc,
        subject=_subject(mail.subject, case, channel),
        text=mail.text or "",
        html=mail.html,
        attachments=mail.attachments,
        case_id=case.id,
        reply_to=identity.reply_address(channel.address, case.id),
        in_reply_to=answered.message_id if answered else None,
        references=tuple(str(r) for r in answered.references) if answered else (),
    )
    entry = enqueue(
        session,
        draft,
        identity=identity,
        account=account,
        channel_id=channel.id,
        account_role=account.role,
        give_up_at=utcnow() + give_up_after,
        user_id=mail.user_id,
    )
    case.updated_at = utcnow()
    return entry


def _addresses(values: tuple[str, ...], name: str) -> tuple[str, ...]:
    checked = []
    for value in values:
        try:
            checked.append(validate_email(value.strip(), check_deliverability=False).normalized)
        except EmailNotValidError as exc:
            raise OutboundError(f"{name}: {value!r} is not a valid address: {exc}") from exc
    return tuple(dict.fromkeys(checked))


def _account(session: Session, mail: CaseMail) -> Account:
    if mail.account_id is not None:
        account = session.get(Account, mail.account_id)
        if account is None or account.deactivated_at is not None or not account.outgoing_active:
            raise OutboundError(f"account {mail.account_id} is not an active sending account")
        if mail.user_id is not None and not _may_use(session, account, mail.user_id):
            raise OutboundError(f"user {mail.user_id} may not send as account {account.id}")
        return account
    chosen = (
        account_for_user(session, mail.user_id)
        if mail.user_id is not None
        else company_account(session, "global")
    )
    if chosen is None:
        raise OutboundError(
            "no account to send with: set up a global account (or the user's personal one)"
        )
    return chosen


def _may_use(session: Session, account: Account, user_id: int) -> bool:
    if account.role == "personal":
        return account.owner_user_id == user_id
    if account.role == "team":
        return account.owner_team_id in team_ids_of(session, user_id)
    return account.role == "global"


def _answered(session: Session, case: Case, message_pk: int | None) -> Message | None:
    if message_pk is not None:
        message = session.get(Message, message_pk)
        if message is None or message.case_id != case.id:
            raise OutboundError(f"message {message_pk} is not on case {case.id}")
        return message
    query = select(Message).where(Message.case_id == case.id, Message.message_id.is_not(None))
    inbound = query.where(Message.direction == "inbound").order_by(Message.id.desc()).limit(1)
    return session.scalar(inbound) or session.scalar(query.order_by(Message.id.desc()).limit(1))


def _subject(subject: str | None, case: Case, channel: Channel) -> str:
    text = " ".join((subject or f"Re: {case.subject}").split())
    if subject_tag_pattern(channel.subject_tag_prefix).search(text):
        return text
    return f"{subject_tag(channel.subject_tag_prefix, case.id)} {text}"


# --- outbox commands -----------------------------------------------------------------------


def _entry(session: Session, outbox_id: int) -> OutboxEntry:
    entry = session.get(OutboxEntry, outbox_id)
    if entry is None:
        raise NotFound(f"Outbox entry {outbox_id} not found")
    return entry


def reset(session: Session, outbox_id: int) -> OutboxEntry:
    """ "Reset email sending status": a message stuck in ``sending`` goes back to ``ready``.
    It may have reached the server already, so it is marked as a possible duplicate."""
    entry = _entry(session, outbox_id)
    if entry.state != "sending":
        raise OutboundError(f"outbox entry {outbox_id} is {entry.state}, not sending")
    entry.state, entry.claimed_until, entry.transmitting_since = "ready", None, None
    entry.maybe_duplicate = True
    entry.next_attempt_at = entry.updated_at = utcnow()
    announce(session, "outbox")
    return entry


def retry(session: Session, outbox_id: int, *, give_up_after: timedelta) -> OutboxEntry:
    """ "Clear email error status": an ``error`` (or waiting ``ready``) message is tried now,
    with a fresh give-up time."""
    entry = _entry(session, outbox_id)
    if entry.state not in ("error", "ready"):
        raise OutboundError(f"outbox entry {outbox_id} is {entry.state}; only error or ready")
    if entry.account_id is None:
        raise OutboundError(f"outbox entry {outbox_id} has no sending account")
    now = utcnow()
    entry.state, entry.next_attempt_at, entry.updated_at = "ready", now, now
    entry.give_up_at = now + give_up_after
    announce(session, "outbox")
    return entry


def cancel(session: Session, outbox_id: int) -> OutboxEntry:
    entry = _entry(session, outbox_id)
    if entry.state not in ("ready", "error"):
        raise OutboundError(f"outbox entry {outbox_id} is {entry.state}; it cannot be cancelled")
    entry.state, entry.updated_at = "cancelled", utcnow()
    return entry


def suspend(session: Session, *, account_id: int | None = None, on: bool = True) -> None:
    """Stop (or resume) sending for everything, or for one account."""
    if not on:
        announce(session, "outbox")  # what waited is sent at once
    if account_id is None:
        load_identity(session)  # the installation row exists
        row = session.get_one(Installation, 1)
        row.outbox_suspended = on
        return
    account = session.get(Account, account_id)
    if account is None:
        raise NotFound(f"Account {account_id} not found")
    account.sending_suspended = on


def list_outbox(
    session: Session,
    *,
    state: str | None = None,
    account_id: int | None = None,
    case_id: int | None = None,
    limit: int = 100,
    offset: int = 0,
) -> list[OutboxEntry]:
    query = select(OutboxEntry).order_by(OutboxEntry.id.desc())
    if state:
        query = query.where(OutboxEntry.state == state)
    if account_id is not None:
        query = query.where(OutboxEntry.account_id == account_id)
    if case_id is not None:
        query = query.where(OutboxEntry.case_id == case_id)
    return list(session.scalars(query.limit(limit).offset(offset)))
