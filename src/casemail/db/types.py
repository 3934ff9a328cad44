"""Column types that behave the same on SQLite and PostgreSQL."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import DateTime, func, select
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import Session
from sqlalchemy.types import TypeDecorator


def utcnow() -> datetime:
    return datetime.now(UTC)


def database_now(session: Session) -> datetime:
    """PostgreSQL's clock (one for every host, so the hosts' clocks need not agree);
    SQLite runs in one process: ours."""
    if session.get_bind().dialect.name == "postgresql":
        now = session.scalar(select(func.now()))
        assert isinstance(now, datetime)
        return now
    return utcnow()


class UTCDateTime(TypeDecorator[datetime]):
    """Timezone-aware UTC datetimes everywhere.

    SQLite keeps no zone, so values are stored as naive UTC and made aware again on load.
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> Any:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to a UTC column")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def bind_processor(self, dialect: Dialect) -> Callable[[Any], Any] | None:
        """On SQLite, one step from an aware datetime to the text SQLAlchemy's DATETIME
        stores (``YYYY-MM-DD HH:MM:SS.ffffff``, which ``isoformat`` writes identically):
        chaining ``process_bind_param`` with DATETIME's own %-formatting cost about 5% of
        a mailbox sync, a dozen datetimes per message."""
        if dialect.name != "sqlite":
            return super().bind_processor(dialect)

        def to_sqlite_text(value: datetime | None) -> str | None:
            if value is None:
                return None
            if value.tzinfo is None:
                raise ValueError("naive datetime given to a UTC column")
            if value.tzinfo is not UTC:
                value = value.astimezone(UTC)
            return value.replace(tzinfo=None).isoformat(" ", "microseconds")

        return to_sqlite_text

    def process_result_value(self, value: Any, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        assert isinstance(value, datetime)
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)


def clip(text: str | None, length: int) -> str | None:
    """``text`` cut to a column's length: PostgreSQL refuses longer values (SQLite takes
    them), and a hostile 1 MB header must not fail the whole message."""
    return text[:length] if text is not None and len(text) > length else text
