"""Channel addresses: normalised on the way in, matched case-insensitively and plus-aware."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from casemail.channels.addresses import InvalidAddress, base_address, domain_of, normalise_address
from casemail.channels.service import ChannelExists, add_channel, find_channel
from casemail.db import Database


@pytest.mark.parametrize(
    ("given_address", "expected"),
    [
        ("support@example.com", "support@example.com"),
        ("Support@Example.COM", "support@example.com"),
        ("  SUPPORT@example.com\t", "support@example.com"),
        # Plus-addressing is part of the address here; only lookup strips it.
        ("Support+Billing@Example.com", "support+billing@example.com"),
        ("support@BÜCHER.example", "support@bücher.example"),
    ],
)
def test_normalise_address(given_address: str, expected: str) -> None:
    assert normalise_address(given_address) == expected


@pytest.mark.parametrize(
    "bad",
    ["", "support", "support@", "@example.com", "sup port@example.com", "a@localhost", "a@@b.com"],
)
def test_normalise_address_refuses_what_is_not_a_mailbox(bad: str) -> None:
    with pytest.raises(InvalidAddress) as raised:
        normalise_address(bad)
    assert repr(bad) in str(raised.value)
    assert isinstance(raised.value, ValueError)


@pytest.mark.parametrize(
    ("given_address", "expected"),
    [
        ("support+c1a2@example.com", "support@example.com"),
        ("Support+Case-42@Example.COM", "support@example.com"),
        ("support+a+b@example.com", "support@example.com"),
        ("support@example.com", "support@example.com"),
        ("SUPPORT@EXAMPLE.COM", "support@example.com"),
        # A plus in the domain is not plus-addressing.
        ("support@a+b.example", "support@a+b.example"),
    ],
)
def test_base_address(given_address: str, expected: str) -> None:
    assert base_address(given_address) == expected


_local = st.text(
    alphabet="abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-", min_size=1
)
_domain = st.from_regex(r"[a-zA-Z0-9-]{1,20}\.[a-zA-Z]{2,6}", fullmatch=True)
_tag = st.text(alphabet="abcdefghijklmnopqrstuvwxyz0123456789+-_.", max_size=20)


@given(local=_local, domain=_domain, tag=_tag)
def test_base_address_drops_any_tag_and_is_idempotent(local: str, domain: str, tag: str) -> None:
    tagged = f"{local}+{tag}@{domain}"
    base = base_address(tagged)
    assert base == f"{local}@{domain}".lower()
    assert base_address(base) == base


def test_domain_of_is_lower_case() -> None:
    assert domain_of("Bob@Customer.EXAMPLE") == "customer.example"
    assert domain_of('"odd@local"@Example.COM') == "example.com"


# Channel lookup, on both databases.


def test_channel_is_stored_normalised(db: Database) -> None:
    with db.write() as session:
        channel = add_channel(session, address="  Support@Example.COM ")
        assert channel.address == "support@example.com"
        assert channel.name == "support@example.com"


@pytest.mark.parametrize(
    "lookup",
    [
        "support@example.com",
        "SUPPORT@Example.Com",
        " support@example.com ",
        "support+case-42@example.com",
        "Support+Anything@EXAMPLE.com",
    ],
)
def test_find_channel_is_case_insensitive_and_plus_aware(db: Database, lookup: str) -> None:
    with db.write() as session:
        expected = add_channel(session, address="Support@Example.com").id
    with db.read() as session:
        found = find_channel(session, lookup)
        assert found is not None
        assert found.id == expected


def test_find_channel_unknown_address(db: Database) -> None:
    with db.write() as session:
        add_channel(session, address="support@example.com")
    with db.read() as session:
        assert find_channel(session, "sales@example.com") is None
        assert find_channel(session, "support@example.org") is None
        assert find_channel(session, "support-team@example.com") is None


def test_exact_plus_channel_wins_over_its_base(db: Database) -> None:
    with db.write() as session:
        base = add_channel(session, address="support@example.com").id
        vip = add_channel(session, address="support+vip@example.com").id
    with db.read() as session:
        exact = find_channel(session, "Support+VIP@example.com")
        other = find_channel(session, "support+other@example.com")
        assert exact is not None
        assert exact.id == vip
        assert other is not None
        assert other.id == base


def test_adding_a_channel_twice_in_another_case_is_refused(db: Database) -> None:
    with db.write() as session:
        add_channel(session, address="support@example.com")
    with pytest.raises(ChannelExists), db.write() as session:
        add_channel(session, address="SUPPORT@EXAMPLE.COM")


def test_adding_an_invalid_channel_address_is_refused(db: Database) -> None:
    with pytest.raises(InvalidAddress), db.write() as session:
        add_channel(session, address="support")
