"""Channel queries and commands used by the CLI, the API and the listener."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from casemail.channels.addresses import base_address, normalise_address
from casemail.config import parse_networks
from casemail.db.models import Channel

DEFAULT_COMPANY_ID = 1


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
    company_id: int = DEFAULT_COMPANY_ID,
) -> Channel:
    normalised = normalise_address(address)
    if session.scalar(select(Channel).where(Channel.address == normalised)) is not None:
        raise ChannelExists(f"a channel for {normalised} exists already")
    channel = Channel(
        company_id=company_id,
        name=name or normalised,
        address=normalised,
        allowed_networks=parse_networks(allowed_networks or []),
        subject_tag_prefix=subject_tag_prefix,
        active=True,
        purge_days=30,
    )
    try:
        # A savepoint: a concurrent insert of the same address loses here, cleanly.
        with session.begin_nested():
            session.add(channel)
    except IntegrityError as exc:
        raise ChannelExists(f"a channel for {normalised} exists already") from exc
    return channel
