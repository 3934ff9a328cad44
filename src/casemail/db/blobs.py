"""Content-addressed storage for raw messages and attachments."""

from __future__ import annotations

import hashlib

from sqlalchemy import select
from sqlalchemy.orm import Session

from casemail.db.models import Blob
from casemail.db.types import utcnow
from casemail.db.upsert import insert_ignore, insert_ignore_returning

CHUNK = 500  # keys per IN (...) list, well inside SQLite's and PostgreSQL's limits


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def put_blob(session: Session, data: bytes) -> str:
    """Store ``data`` once and return its SHA-256; storing it again is a no-op."""
    digest = sha256_hex(data)
    insert_ignore(
        session,
        Blob.__table__,  # type: ignore[arg-type]
        conflict=["sha256"],
        returning=Blob.sha256,
        values={"sha256": digest, "size": len(data), "data": data, "created_at": utcnow()},
    )
    return digest


def get_blob(session: Session, digest: str) -> bytes:
    blob = session.get(Blob, digest)
    if blob is None:
        raise LookupError(f"blob {digest} is missing")
    return blob.data


def put_blobs(session: Session, items: list[bytes]) -> list[str]:
    """``put_blob`` for many, in one statement; returns the digests in order."""
    digests = [sha256_hex(data) for data in items]
    now = utcnow()
    rows = {
        digest: {"sha256": digest, "size": len(data), "data": data, "created_at": now}
        for digest, data in zip(digests, items, strict=True)
    }
    insert_ignore_returning(
        session,
        Blob.__table__,  # type: ignore[arg-type]
        conflict=["sha256"],
        rows=list(rows.values()),
        returning=(Blob.sha256,),
    )
    return digests


def get_blobs(session: Session, digests: list[str]) -> dict[str, bytes]:
    """The stored bytes of each digest found; missing ones are left out."""
    wanted = list(dict.fromkeys(digests))
    found: dict[str, bytes] = {}
    for start in range(0, len(wanted), CHUNK):
        query = select(Blob.sha256, Blob.data).where(Blob.sha256.in_(wanted[start : start + CHUNK]))
        found.update((digest, data) for digest, data in session.execute(query))
    return found
