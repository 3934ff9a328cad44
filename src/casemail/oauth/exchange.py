"""Talking to the provider: the authorization URL, the token endpoint (code and refresh).

The URL and the PKCE challenge come from authlib's RFC 6749 / RFC 7636 helpers; the token
requests are plain form POSTs (RFC 6749 section 4.1.3 and 6) with httpx. No token, code or
secret is ever part of an exception message or a log line: errors carry the provider's
error code and description only.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

import httpx
from authlib.oauth2.rfc6749.parameters import prepare_grant_uri
from authlib.oauth2.rfc7636 import create_s256_code_challenge

TIMEOUT = httpx.Timeout(20.0)

# RFC 6749 section 5.2: invalid_grant: the grant (refresh token or code) is no longer
# good, only a new consent helps. invalid_client / unauthorized_client: the app
# registration is refused (typically its secret expired): an admin replaces the secret,
# and the users' grants, still good, work again without anyone signing in.
REAUTHORISE_ERRORS = frozenset({"invalid_grant"})
CLIENT_ERRORS = frozenset({"invalid_client", "unauthorized_client"})


class ProviderError(RuntimeError):
    """The token endpoint said no (``error`` per RFC 6749 section 5.2) or could not be
    reached (``error`` is "unreachable" or "bad_response")."""

    def __init__(self, error: str, description: str) -> None:
        super().__init__(f"{error}: {description}" if description else error)
        self.error = error
        self.description = description

    @property
    def needs_reauthorisation(self) -> bool:
        return self.error in REAUTHORISE_ERRORS

    @property
    def client_rejected(self) -> bool:
        return self.error in CLIENT_ERRORS


@dataclass(frozen=True)
class ClientData:
    """What a token request needs, read out of the database before any network call."""

    client_id: str
    client_secret: str | None = field(repr=False)
    authorize_url: str
    token_url: str
    scopes: tuple[str, ...]
    redirect_uri: str
    authorize_params: tuple[tuple[str, str], ...] = ()
    issuer: str | None = None  # OpenID Connect
    jwks_url: str | None = None


@dataclass(frozen=True)
class Tokens:
    access_token: str = field(repr=False)
    refresh_token: str | None = field(repr=False)
    expires_in: int | None
    id_token: str | None = field(default=None, repr=False)  # OpenID Connect Core 3.1.3.3


def authorization_url(
    client: ClientData,
    *,
    state: str,
    code_verifier: str,
    login_hint: str | None,
    nonce: str | None = None,
    extra_scopes: tuple[str, ...] = (),
) -> str:
    """RFC 6749 section 4.1.1 with the S256 code challenge of RFC 7636 section 4.3; with a
    ``nonce``, an OpenID Connect authentication request (Core 3.1.2.1)."""
    extra = dict(client.authorize_params)
    if login_hint:
        extra["login_hint"] = login_hint  # OpenID Connect Core 3.1.2.1; both providers honour it
    if nonce:
        extra["nonce"] = nonce
    scopes = dict.fromkeys((*extra_scopes, *client.scopes))
    uri: str = prepare_grant_uri(
        client.authorize_url,
        client_id=client.client_id,
        response_type="code",
        redirect_uri=client.redirect_uri,
        scope=" ".join(scopes),
        state=state,
        code_challenge=create_s256_code_challenge(code_verifier),
        code_challenge_method="S256",
        **extra,
    )
    return uri


def exchange_code(client: ClientData, *, code: str, code_verifier: str) -> Tokens:
    """RFC 6749 section 4.1.3; ``redirect_uri`` identical to the authorization request's."""
    return _token_request(
        client,
        {
            "grant_type": "authorization_code",
            "code": code,
            "redirect_uri": client.redirect_uri,
            "code_verifier": code_verifier,
        },
    )


def refresh(client: ClientData, refresh_token: str) -> Tokens:
    """RFC 6749 section 6. Microsoft wants the scopes again; others accept them."""
    return _token_request(
        client,
        {
            "grant_type": "refresh_token",
            "refresh_token": refresh_token,
            "scope": " ".join(client.scopes),
        },
    )


def _token_request(client: ClientData, form: dict[str, str]) -> Tokens:
    # client_secret_post (RFC 6749 section 2.3.1): both Microsoft and Google accept it; a
    # public client sends only its id.
    form = {**form, "client_id": client.client_id}
    if client.client_secret:
        form["client_secret"] = client.client_secret
    started = time.monotonic()
    try:
        with httpx.Client(timeout=TIMEOUT, follow_redirects=False) as http:
            response = http.post(
                client.token_url, data=form, headers={"Accept": "application/json"}
            )
    except httpx.HTTPError as exc:
        elapsed = time.monotonic() - started
        raise ProviderError(
            "unreachable",
            f"no answer from the token endpoint {client.token_url} after {elapsed:.0f} s "
            f"({type(exc).__name__})",
        ) from None
    return _parse(client, response)


def _parse(client: ClientData, response: httpx.Response) -> Tokens:
    body = _json(response)
    if response.status_code != 200 or "error" in body:
        error = str(body.get("error") or f"http_{response.status_code}")
        description = str(body.get("error_description") or "")[:300]
        raise ProviderError(error, description)
    access_token = body.get("access_token")
    if not isinstance(access_token, str) or not access_token:
        raise ProviderError("bad_response", f"{client.token_url} answered without an access token")
    refresh_token = body.get("refresh_token")
    id_token = body.get("id_token")
    return Tokens(
        access_token,
        refresh_token if isinstance(refresh_token, str) and refresh_token else None,
        _seconds(body.get("expires_in")),
        id_token if isinstance(id_token, str) and id_token else None,
    )


def _seconds(value: Any) -> int | None:
    # RFC 6749 section 5.1: a number of seconds; some providers send it as a string.
    try:
        seconds = int(value)
    except (TypeError, ValueError):
        return None
    return seconds if seconds > 0 else None


def _json(response: httpx.Response) -> dict[str, Any]:
    try:
        body = response.json()
    except ValueError:
        return {}
    return body if isinstance(body, dict) else {}
