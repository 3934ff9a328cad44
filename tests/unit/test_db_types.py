"""UTCDateTime's SQLite shortcut must store exactly what SQLAlchemy's DATETIME stores."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest
from hypothesis import given
from hypothesis import strategies as st
from sqlalchemy import Column, Integer, MetaData, Table, create_engine, insert, select, text
from sqlalchemy.dialects import sqlite
from sqlalchemy.dialects.sqlite import DATETIME

from casemail.db.types import UTCDateTime

aware = st.datetimes(
    min_value=datetime(1, 1, 2),
    max_value=datetime(9999, 12, 30),
    timezones=st.sampled_from([UTC, timezone(timedelta(hours=5, minutes=30)), UTC]),
)


@given(aware)
def test_sqlite_text_is_datetimes_own(value: datetime) -> None:
    ours = UTCDateTime().bind_processor(sqlite.dialect())
    theirs = DATETIME().bind_processor(sqlite.dialect())  # type: ignore[no-untyped-call]
    assert ours is not None
    assert theirs is not None
    assert ours(value) == theirs(value.astimezone(UTC).replace(tzinfo=None))


def test_naive_values_are_refused() -> None:
    ours = UTCDateTime().bind_processor(sqlite.dialect())
    assert ours is not None
    with pytest.raises(ValueError, match="naive"):
        ours(datetime(2026, 12, 4, 10, 0))


def test_round_trip_and_comparison_in_sqlite() -> None:
    engine = create_engine("sqlite://")
    table = Table(
        "t", MetaData(), Column("id", Integer, primary_key=True), Column("at", UTCDateTime)
    )
    table.metadata.create_all(engine)
    india = timezone(timedelta(hours=5, minutes=30))
    stored = datetime(2026, 12, 4, 15, 30, 0, 250, tzinfo=india)
    with engine.begin() as connection:
        connection.execute(insert(table).values(at=stored))
        assert connection.scalar(text("SELECT at FROM t")) == "2026-12-04 10:00:00.000250"
        assert connection.scalar(select(table.c.at)) == stored
        later = datetime(2026, 12, 4, 10, 0, 1, tzinfo=UTC)
        assert connection.scalar(select(table.c.id).where(table.c.at < later)) == 1
        assert connection.scalar(select(table.c.id).where(table.c.at > later)) is None
