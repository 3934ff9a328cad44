"""Telling people that an OAuth2 account must be connected again.

The notice goes to the company's admins and to the account's owner (a personal account's
user), from the system account, through the outbox, once per loss of the grant. When the
system account is the one that lost its grant, the notice cannot go out by mail: it waits
in the outbox in ``error`` saying so, and the state is in the API either way.
"""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from casemail.accounts.sending import company_account
from casemail.db.models import Account, OAuthClient, User
from casemail.identity import load_identity
from casemail.outbound.compose import Draft
from casemail.outbound.queue import enqueue


def notify_reauthorisation(session: Session, account: Account, reason: str) -> None:
    _notify(
        session,
        account,
        _recipients(session, account),
        subject=f"casemail: connect {account.email} again",
        text=_text(account, reason),
    )


def notify_client_rejected(
    session: Session, account: Account, client: OAuthClient, words: str
) -> None:
    """To the admins only: the fix is the app registration's secret, not the user's."""
    _notify(
        session,
        account,
        _recipients(session, account, with_owner=False),
        subject=f"casemail: the OAuth app {client.name} was refused",
        text=(
            f"casemail could not refresh the sign-in of {account.email}: {words}.\n\n"
            "Mail of the accounts using this app waits until then; nothing is lost.\n"
        ),
    )


def _notify(
    session: Session, account: Account, recipients: list[str], *, subject: str, text: str
) -> None:
    system = company_account(session, "system", account.company_id)
    usable = system is not None and system.id != account.id and bool(recipients)
    draft = Draft(
        kind="notice",
        from_address=system.email if system else account.email,
        from_name="casemail",
        to=tuple(recipients),
        subject=subject,
        text=text,
        auto_submitted="auto-generated",
    )
    queued = enqueue(
        session,
        draft,
        identity=load_identity(session),
        account=system if usable else None,
        channel_id=None,
        account_role="system",
        company_id=account.company_id,
    )
    if not recipients:
        queued.last_error = "No one to notify: give a user the admin role."
    elif not usable:
        queued.last_error = (
            f"The system account cannot send this notice: {account.email} is the system "
            "account, or there is none."
        )


def _recipients(session: Session, account: Account, *, with_owner: bool = True) -> list[str]:
    query = select(User.email).where(
        User.company_id == account.company_id, User.role == "admin", User.active.is_(True)
    )
    found = list(session.scalars(query.order_by(User.id)))
    if with_owner and account.owner_user_id is not None:
        owner = session.get(User, account.owner_user_id)
        if owner is not None and owner.active:
            found.append(owner.email)
    return list(dict.fromkeys(address.lower() for address in found))


def _text(account: Account, reason: str) -> str:
    return (
        f"casemail can no longer sign in to {account.email} ({account.name}).\n\n"
        f"Reason: {reason}\n\n"
        "Until it is connected again, no mail is fetched from this mailbox and mail to be "
        "sent from it waits in the outbox. Other accounts are not affected.\n\n"
        f"Connect it again: casemail oauth connect {account.id}\n"
        f"or POST /api/v1/accounts/{account.id}/oauth/start and open the address it returns.\n"
    )
