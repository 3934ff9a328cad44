"""Channel queries and commands used by the CLI, the API and the listener."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from casemail.auth.tenancy import owning_company
from casemail.channels.addresses import base_address, normalise_address
from casemail.channels.rules import ChannelRules
from casemail.config import parse_networks
from casemail.db.models import Account, Channel, Team


class ChannelExists(ValueError):
    pass


def find_channel(session: Session, address: str) -> Channel | None:
    """The channel answering for ``address``, plus-addressing aware."""
    lowered = address.strip().lower()
    for candidate in dict.fromkeys((lowered, base_address(lowered))):
        channel = session.scalar(select(Channel).where(Channel.address == candidate))
        if channel is not None:
            return channel
    return None


def list_channels(session: Session) -> list[Channel]:
    return list(session.scalars(select(Channel).order_by(Channel.id)))


def add_channel(
    session: Session,
    *,
    address: str,
    name: str | None = None,
    allowed_networks: list[str] | None = None,
    subject_tag_prefix: str = "Case",
    company_id: int | None = None,
    account_id: int | None = None,
) -> Channel:
    normalised = normalise_address(address)
    if account_id is not None:
        _check_account(session, account_id)
    if session.scalar(select(Channel).where(Channel.address == normalised)) is not None:
        raise ChannelExists(f"a channel for {normalised} exists already")
    channel = Channel(
        company_id=owning_company(session, company_id),
        name=name or normalised,
        address=normalised,
        allowed_networks=parse_networks(allowed_networks or []),
        subject_tag_prefix=subject_tag_prefix,
        active=True,
        purge_days=30,
        account_id=account_id,
    )
    try:
        # A savepoint: a concurrent insert of the same address loses here, cleanly.
        with session.begin_nested():
            session.add(channel)
    except IntegrityError as exc:
        raise ChannelExists(f"a channel for {normalised} exists already") from exc
    return channel


class UnknownAccount(ValueError):
    pass


def _check_account(session: Session, account_id: int) -> None:
    account = session.get(Account, account_id)
    if account is None or account.deactivated_at is not None:
        raise UnknownAccount(f"no active account {account_id} to fetch mail from")
    if not account.settings.get("incoming"):
        raise UnknownAccount(f"account {account_id} has no incoming server to fetch from")
    taken = session.scalar(select(Channel.address).where(Channel.account_id == account_id))
    if taken is not None:
        raise UnknownAccount(f"account {account_id} already feeds the channel {taken}")


class UnknownChannel(LookupError):
    pass


def set_rules(session: Session, channel_id: int, rules: ChannelRules) -> Channel:
    """Replace a channel's ingest rules (validated by ``ChannelRules``); the next message
    the channel takes is decided by them."""
    channel = session.get(Channel, channel_id)
    if channel is None:
        raise UnknownChannel(f"no channel {channel_id}")
    if rules.team_id is not None:
        _check_team(session, channel, rules.team_id)
    channel.rules = rules.model_dump(mode="json", exclude_defaults=True)
    return channel


def _check_team(session: Session, channel: Channel, team_id: int) -> None:
    team = session.get(Team, team_id)
    if team is None or team.company_id != channel.company_id:
        raise ValueError(f"no team {team_id} in this channel's company")


@dataclass(frozen=True)
class ChannelChanges:
    """Only the fields given (not None) change; ``error_address`` "" clears it."""

    name: str | None = None
    active: bool | None = None
    error_address: str | None = None
    purge_days: int | None = None
    allowed_networks: list[str] | None = None
    subject_tag_prefix: str | None = None


def update_channel(session: Session, channel_id: int, changes: ChannelChanges) -> Channel:
    channel = session.get(Channel, channel_id)
    if channel is None:
        raise UnknownChannel(f"no channel {channel_id}")
    if changes.name is not None:
        channel.name = changes.name.strip() or channel.address
    if changes.active is not None:
        channel.active = changes.active
    if changes.error_address is not None:
        channel.error_address = (
            normalise_address(changes.error_address) if changes.error_address.strip() else None
        )
    if changes.purge_days is not None:
        if not 1 <= changes.purge_days <= 3650:
            raise ValueError("purge_days is 1 to 3650")
        channel.purge_days = changes.purge_days
    if changes.allowed_networks is not None:
        channel.allowed_networks = parse_networks(changes.allowed_networks)
    if changes.subject_tag_prefix is not None:
        channel.subject_tag_prefix = changes.subject_tag_prefix
    session.flush()
    return channel
