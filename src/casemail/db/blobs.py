"""Content-addressed storage for raw messages and attachments."""

from __future__ import annotations

import hashlib

from sqlalchemy.orm import Session

from casemail.db.models import Blob
from casemail.db.types import utcnow
from casemail.db.upsert import insert_ignore


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
