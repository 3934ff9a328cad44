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
