"""Database layer: models, engine and sessions, Alembic migrations."""

from casemail.db.engine import Database

__all__ = ["Database"]
