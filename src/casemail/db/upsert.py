"""``INSERT … ON CONFLICT DO NOTHING`` for both dialects (SQLite ≥ 3.35 and PostgreSQL)."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Table
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session


def insert_ignore(
    session: Session, table: Table, *, conflict: list[str], returning: Any, values: dict[str, Any]
) -> Any | None:
    """Insert a row unless one with the same ``conflict`` columns exists.

    Returns the ``returning`` column of the new row, or None when the row already existed.
    The statement is atomic, so two writers racing for the same key never both insert.
    """
    dialect = session.get_bind().dialect.name
    module = postgresql if dialect == "postgresql" else sqlite
    stmt = (
        module.insert(table)
        .values(**values)
        .on_conflict_do_nothing(index_elements=conflict)
        .returning(returning)
    )
    return session.execute(stmt).scalar_one_or_none()


def insert_ignore_many(
    session: Session, table: Table, *, conflict: list[str], rows: list[dict[str, Any]]
) -> int:
    """``insert_ignore`` for many rows in one statement; returns how many were inserted.
    Keep ``rows`` to a few hundred: every value is a bound parameter."""
    if not rows:
        return 0
    dialect = session.get_bind().dialect.name
    module = postgresql if dialect == "postgresql" else sqlite
    stmt = (
        module.insert(table)
        .values(rows)
        .on_conflict_do_nothing(index_elements=conflict)
        # Counted from RETURNING (only the rows inserted): psycopg reports no rowcount here.
        .returning(*table.primary_key.columns)
    )
    return len(session.execute(stmt).all())


def insert_ignore_returning(
    session: Session,
    table: Table,
    *,
    conflict: list[str],
    rows: list[dict[str, Any]],
    returning: Any,
) -> list[Any]:
    """Insert many rows, skipping those whose ``conflict`` columns exist; returns the
    ``returning`` columns of the rows inserted, in no promised order.

    Executed as one executemany: SQLAlchemy's "insertmanyvalues" sends it as a few
    multi-row INSERT … RETURNING statements compiled once, so this is fast for thousands of
    rows and needs no chunking by the caller. Every row must have the same keys.
    """
    if not rows:
        return []
    dialect = session.get_bind().dialect.name
    module = postgresql if dialect == "postgresql" else sqlite
    stmt = (
        module.insert(table).on_conflict_do_nothing(index_elements=conflict).returning(*returning)
    )
    return list(session.execute(stmt, rows))
