"""API tokens. Only a SHA-256 of each token is stored; the token is shown once, at creation.

A token belongs to a user and acts as that user: their role, their company's data."""

from __future__ import annotations

import hashlib
import hmac
import secrets

from sqlalchemy import select
from sqlalchemy.orm import Session

from casemail.db.models import ApiToken
from casemail.db.types import utcnow

PREFIX = "cm_"


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def create_token(session: Session, *, name: str, user_id: int) -> str:
    return issue_token(session, name=name, user_id=user_id)[0]


def issue_token(session: Session, *, name: str, user_id: int) -> tuple[str, ApiToken]:
    """A new token for the user: the token (shown once) and its stored row."""
    token = PREFIX + secrets.token_urlsafe(32)
    row = ApiToken(name=name, token_hash=_digest(token), user_id=user_id)
    session.add(row)
    session.flush()
    return token, row


def verify_token(session: Session, token: str) -> ApiToken | None:
    """The live token row for ``token``; the lookup is by hash, then compared in constant time."""
    digest = _digest(token)
    row = session.scalar(select(ApiToken).where(ApiToken.token_hash == digest))
    if row is None or row.revoked_at is not None:
        return None
    if not hmac.compare_digest(row.token_hash, digest):
        return None
    row.last_used_at = utcnow()
    return row
