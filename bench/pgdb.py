"""A throwaway PostgreSQL database for one benchmark run, dropped afterwards."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager

import psycopg


@contextmanager
def scratch_database(admin_url: str) -> Iterator[str | None]:
    """The SQLAlchemy URL of a new, empty database; None (with the reason printed) when no
    server answers at ``admin_url`` or it is empty. Dropped on exit."""
    if not admin_url:
        yield None
        return
    name = f"casemail_bench_{time.time_ns()}"
    try:
        with psycopg.connect(admin_url, autocommit=True, connect_timeout=3) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
    except psycopg.Error as exc:
        print(f"PostgreSQL skipped: {admin_url} not reachable ({exc})")
        yield None
        return
    base = admin_url.rsplit("/", 1)[0].replace("postgresql://", "postgresql+psycopg://")
    try:
        yield f"{base}/{name}"
    finally:
        with psycopg.connect(admin_url, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
