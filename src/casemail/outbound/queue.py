"""Put composed mail into the outbox (the sending worker delivers it), and on the case's
email history when it belongs to a case."""

from __future__ import annotations

from datetime import datetime, timedelta
from email.message import EmailMessage
from email.utils import parseaddr

from sqlalchemy.orm import Session

from casemail.db.blobs import put_blob
from casemail.db.models import Account, Case, Message, OutboxEntry
from casemail.db.types import utcnow
from casemail.html.sanitize import safe_html
from casemail.identity import Identity
from casemail.outbound.compose import Draft, bare_message_id, compose
from casemail.workers.wakeup import announce

DEFAULT_GIVE_UP = timedelta(days=2)
NO_ACCOUNT = "No active outgoing account to send this with: set up the {role} account."


def enqueue(
    session: Session,
    draft: Draft,
    *,
    identity: Identity,
    account: Account | None,
    channel_id: int | None,
    account_role: str,
    give_up_at: datetime | None = None,
    user_id: int | None = None,
    company_id: int | None = None,
) -> OutboxEntry:
    """Queue ``draft``; without an account the entry is in ``error`` at once, saying why.
    ``company_id``: whose mail it is (default: the account's, else the case's), so that the
    company's admins see it in their outbox even when no account could take it."""
    message = compose(draft, identity)
    raw = bytes(message)
    digest = put_blob(session, raw)
    now = utcnow()
    entry = OutboxEntry(
        case_id=draft.case_id,
        account_id=account.id if account is not None else None,
        state="ready" if account is not None else "error",
        message_id=bare_message_id(message),
        envelope_from=account.email if account is not None else draft.from_address,
        recipients=list(draft.recipients),
        raw_sha256=digest,
        last_error=None if account is not None else NO_ACCOUNT.format(role=account_role),
        kind=draft.kind,
        subject=draft.subject,
        created_at=now,
        updated_at=now,
        next_attempt_at=now,
        give_up_at=give_up_at or now + DEFAULT_GIVE_UP,
        user_id=user_id,
        company_id=company_id or _owner(session, account, draft.case_id),
    )
    session.add(entry)
    if draft.case_id is not None and channel_id is not None:
        session.add(_history_row(draft, message, digest, channel_id))
    session.flush()
    if entry.state == "ready":
        announce(session, "outbox")  # an idle sender takes it at the commit, not next poll
    return entry


def _owner(session: Session, account: Account | None, case_id: int | None) -> int | None:
    if account is not None:
        return account.company_id
    case = session.get(Case, case_id) if case_id is not None else None
    return case.company_id if case is not None else None


def _history_row(draft: Draft, message: EmailMessage, digest: str, channel_id: int) -> Message:
    assert draft.case_id is not None
    return Message(
        case_id=draft.case_id,
        channel_id=channel_id,
        direction="outbound",
        message_id=bare_message_id(message),
        in_reply_to=draft.in_reply_to,
        references=list(draft.references),
        subject=draft.subject,
        from_address=draft.from_address,
        from_name=draft.from_name,
        to_addresses=[{"email": parseaddr(a)[1], "name": None} for a in draft.to],
        cc_addresses=[{"email": parseaddr(a)[1], "name": None} for a in draft.cc],
        sent_at=None,
        text_body=draft.text,
        # Shown in the UI and returned by the API like inbound mail: made safe the same way.
        html_body=safe_html(draft.html) if draft.html is not None else None,
        raw_sha256=digest,
        classification="normal",
    )
