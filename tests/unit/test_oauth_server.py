"""The test OAuth2 authorization server (tests/mailservers/oauth.py), over real HTTP.

The authorization-code flow with PKCE (RFC 6749 section 4.1, RFC 7636), refresh-token
rotation (RFC 9700 section 4.14.2), consent revocation and expiry as seen through RFC 7662
introspection; and the older issue()/revoke() API the mail-server tests rely on.

Also the OpenID Connect side (OpenID Connect Core 1.0 section 3.1, Discovery 1.0): the
id_token of the code exchange, checked against the published /jwks, and the test knobs that
make it a forgery the service under test must refuse.
"""

from __future__ import annotations

import base64
import hashlib
import secrets
import threading
import time
from collections.abc import Iterator
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from joserfc import jws, jwt
from joserfc.errors import BadSignatureError
from joserfc.jwk import KeySet

from tests.mailservers.oauth import TokenIssuer

CLIENT_ID = "casemail-test"
CLIENT_SECRET = "s3cret-" + "x" * 20
REDIRECT_URI = "http://127.0.0.1:9/callback"
SCOPE = "mail offline_access"
USER = "alice@example.test"


@pytest.fixture
def issuer() -> Iterator[TokenIssuer]:
    server = TokenIssuer()
    server.register_client(CLIENT_ID, CLIENT_SECRET, [REDIRECT_URI], SCOPE)
    server.next_user = USER
    server.start()
    yield server
    server.stop()


@pytest.fixture
def http() -> Iterator[httpx.Client]:
    with httpx.Client(follow_redirects=False, timeout=10) as client:
        yield client


def pkce_pair() -> tuple[str, str]:
    """RFC 7636 section 4.1 and 4.2: a verifier and its S256 challenge."""
    verifier = secrets.token_urlsafe(48)
    digest = hashlib.sha256(verifier.encode("ascii")).digest()
    return verifier, base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")


def authorize(
    http: httpx.Client, issuer: TokenIssuer, challenge: str | None, **extra: str
) -> httpx.Response:
    params = {
        "response_type": "code",
        "client_id": CLIENT_ID,
        "redirect_uri": REDIRECT_URI,
        "scope": SCOPE,
        "state": "st-123",
    }
    if challenge is not None:
        params.update(code_challenge=challenge, code_challenge_method="S256")
    params.update(extra)
    return http.get(issuer.authorize_url, params=params)


def redirect_params(response: httpx.Response) -> dict[str, str]:
    assert response.status_code == 302
    location = response.headers["location"]
    assert location.startswith(REDIRECT_URI + "?")
    return {key: values[0] for key, values in parse_qs(urlsplit(location).query).items()}


def get_code(http: httpx.Client, issuer: TokenIssuer) -> tuple[str, str]:
    verifier, challenge = pkce_pair()
    params = redirect_params(authorize(http, issuer, challenge))
    assert params["state"] == "st-123"
    return params["code"], verifier


def exchange(
    http: httpx.Client, issuer: TokenIssuer, code: str, verifier: str, **extra: str
) -> httpx.Response:
    form = {
        "grant_type": "authorization_code",
        "code": code,
        "redirect_uri": REDIRECT_URI,
        "code_verifier": verifier,
        "client_id": CLIENT_ID,
        "client_secret": CLIENT_SECRET,
    }
    form.update(extra)
    return http.post(issuer.token_url, data=form)


def refresh(http: httpx.Client, issuer: TokenIssuer, refresh_token: str) -> httpx.Response:
    form = {"grant_type": "refresh_token", "refresh_token": refresh_token}
    return http.post(issuer.token_url, data=form, auth=(CLIENT_ID, CLIENT_SECRET))


def tokens_for(http: httpx.Client, issuer: TokenIssuer) -> dict[str, Any]:
    response = exchange(http, issuer, *get_code(http, issuer))
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def introspect(http: httpx.Client, issuer: TokenIssuer, token: str) -> dict[str, Any]:
    response = http.post(issuer.introspection_url, data={"token": token})
    assert response.status_code == 200
    body: dict[str, Any] = response.json()
    return body


def error_of(response: httpx.Response) -> str:
    assert response.status_code in (400, 401), response.text
    error: str = response.json()["error"]
    return error


def test_code_flow_with_pkce_issues_tokens_that_introspect_active(
    issuer: TokenIssuer, http: httpx.Client
) -> None:
    issuer.access_token_lifetime = 1234
    code, verifier = get_code(http, issuer)
    response = exchange(http, issuer, code, verifier)

    assert response.status_code == 200
    assert response.headers["cache-control"] == "no-store"  # RFC 6749 section 5.1
    body = response.json()
    assert body["token_type"] == "Bearer"
    assert body["expires_in"] == 1234
    assert body["scope"] == SCOPE
    assert body["refresh_token"]
    answer = introspect(http, issuer, body["access_token"])
    assert answer.pop("exp") == pytest.approx(time.time() + 1234, abs=5)
    assert answer == {
        "active": True,
        "username": USER,
        "token_type": "Bearer",
        "client_id": CLIENT_ID,
        "scope": SCOPE,
    }
    assert issuer.username_for(body["access_token"]) == USER
    assert issuer.token_requests == [
        {"grant_type": "authorization_code", "client_id": CLIENT_ID, "outcome": "ok"}
    ]
    assert CLIENT_SECRET not in repr(issuer.token_requests)


def test_client_secret_basic_is_accepted_and_a_wrong_secret_is_not(
    issuer: TokenIssuer, http: httpx.Client
) -> None:
    code, verifier = get_code(http, issuer)
    form = {
        "grant_type": "authorization_code",
        "code": code,
        "redirect_uri": REDIRECT_URI,
        "code_verifier": verifier,
    }
    wrong = http.post(issuer.token_url, data=form, auth=(CLIENT_ID, "wrong"))
    assert wrong.status_code == 401  # RFC 6749 section 5.2: Basic auth failed
    assert error_of(wrong) == "invalid_client"
    right = http.post(issuer.token_url, data=form, auth=(CLIENT_ID, CLIENT_SECRET))
    assert right.status_code == 200
    assert [r["outcome"] for r in issuer.token_requests] == ["invalid_client", "ok"]
    assert [r["client_id"] for r in issuer.token_requests] == [CLIENT_ID, CLIENT_ID]


def test_login_hint_names_the_user_when_next_user_is_unset(
    issuer: TokenIssuer, http: httpx.Client
) -> None:
    issuer.next_user = None
    _, challenge = pkce_pair()
    assert authorize(http, issuer, challenge).status_code == 400  # no user

    verifier, challenge = pkce_pair()
    code = redirect_params(authorize(http, issuer, challenge, login_hint="bob@example.test"))
    body = exchange(http, issuer, code["code"], verifier).json()
    assert issuer.username_for(body["access_token"]) == "bob@example.test"


def test_refresh_rotates_and_the_old_refresh_token_is_rejected(
    issuer: TokenIssuer, http: httpx.Client
) -> None:
    first = tokens_for(http, issuer)
    second = refresh(http, issuer, first["refresh_token"])
    assert second.status_code == 200
    new = second.json()
    assert new["refresh_token"] != first["refresh_token"]
    assert new["access_token"] != first["access_token"]
    assert new["scope"] == SCOPE

    assert error_of(refresh(http, issuer, first["refresh_token"])) == "invalid_grant"
    assert refresh(http, issuer, new["refresh_token"]).status_code == 200
    assert issuer.refresh_count == 2
    outcomes = [(r["grant_type"], r["outcome"]) for r in issuer.token_requests]
    assert outcomes == [
        ("authorization_code", "ok"),
        ("refresh_token", "ok"),
        ("refresh_token", "invalid_grant"),
        ("refresh_token", "ok"),
    ]


def test_concurrent_refreshes_with_one_token_only_one_wins(
    issuer: TokenIssuer, http: httpx.Client
) -> None:
    refresh_token = tokens_for(http, issuer)["refresh_token"]
    issuer.token_delay = 0.3
    statuses: list[int] = []

    def attempt() -> None:
        with httpx.Client(timeout=10) as own:
            statuses.append(refresh(own, issuer, refresh_token).status_code)

    threads = [threading.Thread(target=attempt) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(statuses) == [200, 400]
    assert issuer.refresh_count == 1


def test_wrong_code_verifier_is_invalid_grant(issuer: TokenIssuer, http: httpx.Client) -> None:
    code, _ = get_code(http, issuer)
    other_verifier, _ = pkce_pair()
    assert error_of(exchange(http, issuer, code, other_verifier)) == "invalid_grant"


def test_code_is_single_use(issuer: TokenIssuer, http: httpx.Client) -> None:
    code, verifier = get_code(http, issuer)
    assert exchange(http, issuer, code, verifier).status_code == 200
    assert error_of(exchange(http, issuer, code, verifier)) == "invalid_grant"


def test_token_redirect_uri_must_match_the_authorization_request(
    issuer: TokenIssuer, http: httpx.Client
) -> None:
    code, verifier = get_code(http, issuer)
    response = exchange(http, issuer, code, verifier, redirect_uri=REDIRECT_URI + "x")
    assert error_of(response) == "invalid_grant"


@pytest.mark.parametrize(
    "extra",
    [{"redirect_uri": "http://127.0.0.1:9/evil"}, {"client_id": "unknown-client"}],
    ids=["unregistered-redirect-uri", "unknown-client"],
)
def test_bad_client_or_redirect_uri_is_an_error_page_not_a_redirect(
    issuer: TokenIssuer, http: httpx.Client, extra: dict[str, str]
) -> None:
    _, challenge = pkce_pair()
    response = authorize(http, issuer, challenge, **extra)
    assert response.status_code == 400
    assert "location" not in response.headers
    assert response.headers["content-type"].startswith("text/html")


def test_missing_code_challenge_is_invalid_request(issuer: TokenIssuer, http: httpx.Client) -> None:
    params = redirect_params(authorize(http, issuer, None))
    assert params["error"] == "invalid_request"
    assert params["state"] == "st-123"
    assert "code" not in params


def test_plain_code_challenge_method_is_refused(issuer: TokenIssuer, http: httpx.Client) -> None:
    verifier, _ = pkce_pair()
    response = authorize(http, issuer, verifier, code_challenge_method="plain")
    assert redirect_params(response)["error"] == "invalid_request"


def test_consent_denied_redirects_with_access_denied(
    issuer: TokenIssuer, http: httpx.Client
) -> None:
    issuer.consent_denied = True
    _, challenge = pkce_pair()
    params = redirect_params(authorize(http, issuer, challenge))
    assert params["error"] == "access_denied"
    assert params["state"] == "st-123"
    assert "code" not in params


def test_revoke_user_kills_refresh_and_access_tokens(
    issuer: TokenIssuer, http: httpx.Client
) -> None:
    tokens = tokens_for(http, issuer)
    issued = issuer.issue(USER)
    issuer.next_user = "bob@example.test"
    bobs = tokens_for(http, issuer)

    issuer.revoke_user(USER)
    assert error_of(refresh(http, issuer, tokens["refresh_token"])) == "invalid_grant"
    assert introspect(http, issuer, tokens["access_token"]) == {"active": False}
    assert introspect(http, issuer, issued) == {"active": False}
    assert introspect(http, issuer, bobs["access_token"])["active"] is True
    assert refresh(http, issuer, bobs["refresh_token"]).status_code == 200


def test_expired_access_tokens_are_inactive_and_refresh_still_works(
    issuer: TokenIssuer, http: httpx.Client
) -> None:
    tokens = tokens_for(http, issuer)
    issuer.next_user = "bob@example.test"
    bobs = tokens_for(http, issuer)

    issuer.expire_access_tokens(USER)
    assert introspect(http, issuer, tokens["access_token"]) == {"active": False}
    assert issuer.username_for(tokens["access_token"]) is None
    assert introspect(http, issuer, bobs["access_token"])["active"] is True

    renewed = refresh(http, issuer, tokens["refresh_token"]).json()
    assert introspect(http, issuer, renewed["access_token"])["username"] == USER

    issuer.expire_access_tokens()
    assert introspect(http, issuer, bobs["access_token"]) == {"active": False}
    assert introspect(http, issuer, renewed["access_token"]) == {"active": False}


def test_issue_and_revoke_still_work(issuer: TokenIssuer, http: httpx.Client) -> None:
    token = issuer.issue("carol@example.test")
    assert token.startswith("tok-")
    assert issuer.username_for(token) == "carol@example.test"
    assert issuer.introspect(token) == {
        "active": True,
        "username": "carol@example.test",
        "token_type": "Bearer",
    }
    assert introspect(http, issuer, token) == issuer.introspect(token)

    issuer.revoke(token)
    assert issuer.username_for(token) is None
    assert introspect(http, issuer, token) == {"active": False}
    assert introspect(http, issuer, "tok-never-issued") == {"active": False}


OIDC_SCOPE = "openid email profile"


def oidc_tokens(http: httpx.Client, issuer: TokenIssuer, **extra: str) -> dict[str, Any]:
    verifier, challenge = pkce_pair()
    params = redirect_params(authorize(http, issuer, challenge, **extra))
    response = exchange(http, issuer, params["code"], verifier)
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def verified_claims(http: httpx.Client, issuer: TokenIssuer, id_token: str) -> dict[str, Any]:
    """The id_token's claims, after checking its signature against /jwks, picked by kid."""
    keys = KeySet.import_key_set(http.get(issuer.jwks_url).json())
    token = jwt.decode(id_token, keys, algorithms=["RS256"])
    assert token.header["alg"] == "RS256"
    assert token.header["kid"] == keys.keys[0].kid
    return dict(token.claims)


def half_hash(value: str) -> str:
    """OpenID Connect Core section 3.1.3.6 at_hash, for RS256: the left half of SHA-256."""
    digest = hashlib.sha256(value.encode("ascii")).digest()[:16]
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")


def test_openid_code_flow_returns_an_id_token_that_verifies_against_jwks(
    issuer: TokenIssuer, http: httpx.Client
) -> None:
    issuer.set_user(USER, email="alice.smith@example.test", name="Alice Smith")
    body = oidc_tokens(http, issuer, scope=f"{OIDC_SCOPE} {SCOPE}", nonce="n-0S6_WzA2Mj")
    assert body["scope"] == f"{OIDC_SCOPE} {SCOPE}"

    claims = verified_claims(http, issuer, body["id_token"])
    now = time.time()
    assert claims.pop("iat") == pytest.approx(now, abs=5)
    assert claims.pop("exp") == pytest.approx(now + 600, abs=5)
    assert claims.pop("auth_time") == pytest.approx(now, abs=5)
    assert claims == {
        "iss": issuer.issuer,
        "sub": TokenIssuer.subject_for(USER),
        "aud": CLIENT_ID,
        "nonce": "n-0S6_WzA2Mj",
        "at_hash": half_hash(body["access_token"]),
        "email": "alice.smith@example.test",
        "email_verified": True,
        "preferred_username": USER,
        "name": "Alice Smith",
    }
    assert issuer.issuer == issuer.base_url
    # The access token is an ordinary one, and a refresh brings no new id_token.
    assert introspect(http, issuer, body["access_token"])["scope"] == body["scope"]
    renewed = refresh(http, issuer, body["refresh_token"]).json()
    assert renewed["scope"] == body["scope"]
    assert "id_token" not in renewed


def test_sub_is_stable_and_opaque_and_claims_default_to_the_username(
    issuer: TokenIssuer, http: httpx.Client
) -> None:
    first = verified_claims(http, issuer, oidc_tokens(http, issuer, scope=OIDC_SCOPE)["id_token"])
    issuer.set_user(USER, email="renamed@example.test")
    second = verified_claims(http, issuer, oidc_tokens(http, issuer, scope=OIDC_SCOPE)["id_token"])

    assert first["sub"] == second["sub"] == TokenIssuer.subject_for(USER)
    assert USER not in first["sub"]
    assert (first["email"], first["name"]) == (USER, USER)
    assert (second["email"], second["name"]) == ("renamed@example.test", USER)
    assert "nonce" not in first  # none was sent


def test_openid_alone_gives_only_the_subject(issuer: TokenIssuer, http: httpx.Client) -> None:
    claims = verified_claims(http, issuer, oidc_tokens(http, issuer, scope="openid")["id_token"])
    assert set(claims) == {"iss", "sub", "aud", "iat", "exp", "auth_time", "at_hash"}


def test_without_openid_there_is_no_id_token(issuer: TokenIssuer, http: httpx.Client) -> None:
    body = tokens_for(http, issuer)
    assert body["scope"] == SCOPE
    assert "id_token" not in body


def test_prompt_none_needs_a_logged_in_user(issuer: TokenIssuer, http: httpx.Client) -> None:
    body = oidc_tokens(http, issuer, scope=OIDC_SCOPE, prompt="none")
    assert verified_claims(http, issuer, body["id_token"])["sub"] == issuer.subject_for(USER)

    issuer.next_user = None  # OpenID Connect Core section 3.1.2.6
    _, challenge = pkce_pair()
    params = redirect_params(authorize(http, issuer, challenge, scope=OIDC_SCOPE, prompt="none"))
    assert params["error"] == "login_required"
    assert params["state"] == "st-123"


def test_discovery_document_and_jwks(issuer: TokenIssuer, http: httpx.Client) -> None:
    response = http.get(issuer.discovery_url)
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/json"
    assert issuer.discovery_url == issuer.issuer + "/.well-known/openid-configuration"
    base = issuer.base_url
    assert response.json() == {
        "issuer": base,
        "authorization_endpoint": f"{base}/authorize",
        "token_endpoint": f"{base}/token",
        "jwks_uri": f"{base}/jwks",
        "introspection_endpoint": f"{base}/introspect",
        "scopes_supported": ["openid", "email", "profile", "mail", "offline_access"],
        "response_types_supported": ["code"],
        "response_modes_supported": ["query"],
        "grant_types_supported": ["authorization_code", "refresh_token"],
        "subject_types_supported": ["public"],
        "id_token_signing_alg_values_supported": ["RS256"],
        "token_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post"],
        "code_challenge_methods_supported": ["S256"],
        "claims_supported": [
            *("iss", "sub", "aud", "iat", "exp", "auth_time", "nonce", "at_hash"),
            *("email", "email_verified", "name", "preferred_username"),
        ],
    }

    jwks = http.get(issuer.jwks_url).json()
    assert [sorted(key) for key in jwks["keys"]] == [["alg", "e", "kid", "kty", "n", "use"]]
    assert jwks["keys"][0]["kty"] == "RSA"
    assert jwks["keys"][0]["alg"] == "RS256"
    assert jwks == issuer.jwks()


def test_rogue_key_id_token_does_not_verify_against_jwks(
    issuer: TokenIssuer, http: httpx.Client
) -> None:
    issuer.sign_with_rogue_key = True
    forged = oidc_tokens(http, issuer, scope=OIDC_SCOPE)["id_token"]
    with pytest.raises(BadSignatureError):
        verified_claims(http, issuer, forged)
    # It names the published kid, so only the signature check catches it; /jwks is unchanged.
    keys = KeySet.import_key_set(http.get(issuer.jwks_url).json())
    assert jws.extract_compact(forged.encode()).headers()["kid"] == keys.keys[0].kid
    assert http.get(issuer.jwks_url).json() == issuer.jwks()

    issuer.sign_with_rogue_key = False
    genuine = oidc_tokens(http, issuer, scope=OIDC_SCOPE)["id_token"]
    assert verified_claims(http, issuer, genuine)["aud"] == CLIENT_ID


def test_audience_override_issues_a_valid_signature_for_another_audience(
    issuer: TokenIssuer, http: httpx.Client
) -> None:
    issuer.id_token_audience_override = "someone-else"
    id_token = oidc_tokens(http, issuer, scope=OIDC_SCOPE)["id_token"]
    claims = verified_claims(http, issuer, id_token)
    assert claims["aud"] == "someone-else"
    assert claims["iss"] == issuer.issuer


def test_stop_without_start_returns() -> None:
    TokenIssuer().stop()
