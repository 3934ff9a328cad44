"""Password sign-in with lock-out: five failures in a row lock the user for 15 minutes.

The answer never says whether the address exists: an unknown address, a wrong password, a
user without a password and an inactive user all get the same words, and an unknown
address costs the same argon2 verification as a known one (no timing oracle).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from functools import cache

from sqlalchemy import select
from sqlalchemy.orm import Session

from casemail.auth.passwords import hash_password, needs_rehash, verify_password
from casemail.db.models import User
from casemail.db.types import utcnow

MAX_FAILED_SIGN_INS = 5
LOCK_FOR = timedelta(minutes=15)
WRONG = "Wrong email address or password."
LOCKED = "Too many failed sign-ins: try again in 15 minutes, or ask an admin to reset it."


@cache
def _dummy_hash() -> str:
    """Verified when the address is unknown, so both cases take one argon2 verification
    (made at the first sign-in, not at import: every CLI command imports this module)."""
    return hash_password("not-a-password-of-anyone")


@dataclass(frozen=True)
class SignIn:
    user: User | None
    refusal: str | None = None


def sign_in(session: Session, email: str, password: str) -> SignIn:
    user = session.scalar(select(User).where(User.email == email.strip().lower()))
    if user is None:
        verify_password(_dummy_hash(), password)
        return SignIn(None, WRONG)
    now = utcnow()
    if user.locked_until is not None and user.locked_until > now:
        return SignIn(None, LOCKED)
    if not verify_password(user.password_hash, password) or not user.active:
        user.failed_sign_ins = (user.failed_sign_ins or 0) + 1
        if user.failed_sign_ins >= MAX_FAILED_SIGN_INS:
            user.locked_until = now + LOCK_FOR
            user.failed_sign_ins = 0
            return SignIn(None, LOCKED)
        return SignIn(None, WRONG)
    user.failed_sign_ins = 0
    user.locked_until = None
    user.last_sign_in_at = now
    if user.password_hash is not None and needs_rehash(user.password_hash):
        user.password_hash = hash_password(password)
    return SignIn(user)
