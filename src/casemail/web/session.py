"""Web sessions and CSRF tokens, in signed cookies.

The session cookie holds the user id, a CSRF token and a fingerprint of the user's password
hash, signed with a key derived from the installation's secret (shared by every process
through the database, so any worker can read any session). Nothing else is kept on the
server, and yet:

- changing a password ends every other session (the fingerprint no longer matches);
- deactivating a user ends theirs (the user is loaded, and checked, on every request);
- a session lasts 12 hours from sign-in at most (``max_age`` of the signature).

CSRF: every form and htmx request sends the session's token (a hidden field, or the
``X-CSRF-Token`` header), compared in constant time; a request from another origin is
refused on its ``Origin`` header as well. The sign-in form, before any session exists,
carries a token from its own short-lived cookie (login CSRF).
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass
from typing import Any

from itsdangerous import BadSignature, URLSafeTimedSerializer

SESSION_COOKIE = "casemail_session"
SIGNIN_COOKIE = "casemail_signin"
SESSION_SECONDS = 12 * 3600
SIGNIN_SECONDS = 3600
CSRF_FIELD = "csrf"
CSRF_HEADER = "X-CSRF-Token"


def password_fingerprint(password_hash: str | None) -> str:
    return hashlib.sha256((password_hash or "").encode()).hexdigest()[:16]


@dataclass(frozen=True)
class WebSession:
    user_id: int
    csrf: str
    fingerprint: str


class SessionSigner:
    def __init__(self, installation_key: bytes) -> None:
        key = hmac.new(installation_key, b"casemail web session v1", hashlib.sha256).digest()
        self._sessions = URLSafeTimedSerializer(key, salt="session")
        self._signin = URLSafeTimedSerializer(key, salt="signin-form")

    def new_session(self, user_id: int, password_hash: str | None) -> tuple[str, WebSession]:
        session = WebSession(
            user_id, secrets.token_urlsafe(32), password_fingerprint(password_hash)
        )
        data = {"u": session.user_id, "c": session.csrf, "f": session.fingerprint}
        return self._sessions.dumps(data), session

    def read_session(self, cookie: str | None) -> WebSession | None:
        data = _loads(self._sessions, cookie, SESSION_SECONDS)
        if not isinstance(data, dict):
            return None
        user_id, csrf, fingerprint = data.get("u"), data.get("c"), data.get("f")
        if not (
            isinstance(user_id, int) and isinstance(csrf, str) and isinstance(fingerprint, str)
        ):
            return None
        return WebSession(user_id, csrf, fingerprint)

    def new_signin_token(self) -> tuple[str, str]:
        """(cookie value, form token) for the sign-in form."""
        token = secrets.token_urlsafe(32)
        return self._signin.dumps(token), token

    def read_signin_token(self, cookie: str | None) -> str | None:
        token = _loads(self._signin, cookie, SIGNIN_SECONDS)
        return token if isinstance(token, str) else None


def _loads(serializer: URLSafeTimedSerializer, cookie: str | None, max_age: int) -> Any:
    if not cookie or len(cookie) > 4096:
        return None
    try:
        return serializer.loads(cookie, max_age=max_age)
    except BadSignature:  # also SignatureExpired
        return None


def same_token(expected: str, given: str | None) -> bool:
    return given is not None and hmac.compare_digest(expected.encode(), given.encode())
