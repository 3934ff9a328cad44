"""Checking an OpenID Connect ID token (Core 1.0 section 3.1.3.7) with joserfc.

The signature is checked against the provider's published keys (fetched from its
``jwks_uri``, kept for an hour, fetched again once when a token names a key not in the
set: providers rotate keys), only with RS256; then the claims: ``iss`` exactly the
provider's issuer, ``aud`` our client id, ``exp`` in the future, ``iat`` not in the future,
and ``nonce`` the one we sent (which binds the token to this sign-in).
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from typing import Any

import httpx
from joserfc import jwt
from joserfc.errors import JoseError
from joserfc.jwk import KeySet

from casemail.oauth.exchange import TIMEOUT, ClientData
from casemail.oauth.providers import TENANT_ID

KEYS_FOR = 3600.0  # seconds a fetched key set is used
LEEWAY = 120  # seconds of clock difference tolerated on exp / iat

_cache: dict[str, tuple[float, KeySet]] = {}
_cache_lock = threading.Lock()


class IdTokenError(ValueError):
    """The ID token cannot be trusted; the message says why (never the token)."""


@dataclass(frozen=True)
class Identity:
    subject: str
    email: str
    name: str | None


def verify_id_token(client: ClientData, id_token: str, *, nonce: str) -> Identity:
    if not client.jwks_url or not client.issuer:
        raise IdTokenError("the OAuth client has no issuer or key URL for OpenID Connect")
    token = _decode(client.jwks_url, id_token)
    claims: dict[str, Any] = dict(token.claims)
    issuer = client.issuer.replace(TENANT_ID, str(claims.get("tid", "")))
    registry = jwt.JWTClaimsRegistry(
        leeway=LEEWAY,
        iss={"essential": True, "value": issuer},
        aud={"essential": True, "value": client.client_id},
        exp={"essential": True},
        iat={"essential": True},
        sub={"essential": True},
        nonce={"essential": True, "value": nonce},
    )
    try:
        registry.validate(claims)
    except JoseError as exc:
        raise IdTokenError(
            f"the ID token was refused: {exc.error} {exc.description or ''}"
        ) from None
    email = _email(claims)
    if not email:
        raise IdTokenError("the ID token names no e-mail address (scope 'email' not granted?)")
    name = claims.get("name")
    return Identity(str(claims["sub"]), email, name if isinstance(name, str) else None)


def _email(claims: dict[str, Any]) -> str:
    """``email`` (Core 5.1); Google marks unverified ones, which are refused. Microsoft
    work accounts often carry the address only as ``preferred_username``."""
    email = claims.get("email")
    if isinstance(email, str) and email and claims.get("email_verified", True) is not False:
        return email.strip().lower()
    preferred = claims.get("preferred_username")
    microsoft = str(claims.get("iss", "")).startswith("https://login.microsoftonline.com/")
    if microsoft and isinstance(preferred, str) and "@" in preferred:
        return preferred.strip().lower()
    return ""


def _decode(jwks_url: str, id_token: str) -> jwt.Token:
    for refetch in (False, True):
        keys = _key_set(jwks_url, refetch=refetch)
        try:
            return jwt.decode(id_token, keys, algorithms=["RS256"])
        except JoseError as exc:
            if refetch or exc.error not in ("invalid_key_id", "missing_key", "bad_signature"):
                raise IdTokenError(
                    f"the ID token's signature does not check out ({exc.error})"
                ) from None
        except ValueError as exc:
            raise IdTokenError(f"the ID token is malformed ({exc})") from None
    raise AssertionError("unreachable")


def _key_set(jwks_url: str, *, refetch: bool) -> KeySet:
    now = time.monotonic()
    with _cache_lock:
        cached = _cache.get(jwks_url)
        if cached is not None and not refetch and now - cached[0] < KEYS_FOR:
            return cached[1]
    try:
        with httpx.Client(timeout=TIMEOUT, follow_redirects=False) as http:
            response = http.get(jwks_url, headers={"Accept": "application/json"})
        response.raise_for_status()
        keys = KeySet.import_key_set(response.json())
    except (httpx.HTTPError, ValueError, JoseError) as exc:
        raise IdTokenError(
            f"cannot read the provider's keys at {jwks_url} ({type(exc).__name__})"
        ) from None
    with _cache_lock:
        _cache[jwks_url] = (now, keys)
    return keys
