"""A test OAuth2 authorization server: issues access tokens and answers RFC 7662
token introspection, which is how Dovecot's ``oauth2`` passdb checks XOAUTH2 logins.

The SMTP peer asks the same issuer in-process, so one token works for IMAP, POP3 and SMTP.

It is also a real authorization-code server (RFC 6749 section 4.1, PKCE S256 required per
RFC 7636, rotating refresh tokens per RFC 9700 section 4.14.2), built on authlib and
served on the same loopback port: ``/authorize``, ``/token`` and ``/introspect``. Access
tokens from either path live in one store, so ``/introspect`` accepts both.

And an OpenID Connect provider (OpenID Connect Core 1.0, authorization code flow, section
3.1): with ``openid`` in the scope, the code exchange also returns an RS256 ``id_token``,
whose key is published at ``/jwks``, and ``/.well-known/openid-configuration`` describes it
all (OpenID Connect Discovery 1.0). The issuer is the plain-http loopback base URL, which
Discovery section 3 would want https for: this is a test server.
"""

from __future__ import annotations

import hashlib
import html
import json
import secrets
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, ClassVar
from urllib.parse import parse_qs, urlsplit

# authlib ships no type hints (pyproject ignores its missing stubs): its classes are Any.
from authlib.oauth2.rfc6749 import (
    AuthorizationServer,
    InvalidGrantError,
    InvalidRequestError,
    OAuth2Error,
    OAuth2Payload,
    OAuth2Request,
)
from authlib.oauth2.rfc6749.grants import (
    AuthorizationCodeGrant,
    RefreshTokenGrant,
)
from authlib.oauth2.rfc6749.util import (
    extract_basic_authorization,
)
from authlib.oauth2.rfc6750 import BearerTokenGenerator
from authlib.oauth2.rfc7636 import CodeChallenge
from authlib.oidc.core.grants import OpenIDCode
from joserfc.jwk import KeySet, RSAKey

_Response = tuple[int, bytes, list[tuple[str, str]]]
# RFC 6749 section 4.1.2: codes "MUST expire shortly"; 10 minutes is the recommended maximum.
_CODE_LIFETIME = 600.0
# OpenID Connect Core section 2 leaves the id_token lifetime to the provider; it is read once,
# right after the code exchange, so minutes are plenty.
_ID_TOKEN_LIFETIME = 600
_ID_TOKEN_ALG = "RS256"
# OpenID Connect Core sections 3.1.2.1 and 5.4: allowed to every client on top of what it
# registered, so any client can ask for an id_token and the email and profile claims in it.
_OIDC_SCOPES = ("openid", "email", "profile")


@dataclass(frozen=True)
class _Client:
    """A confidential client (RFC 6749 section 2.1), in authlib's ClientMixin shape."""

    client_id: str
    client_secret: str = field(repr=False)  # authlib logs clients at DEBUG
    redirect_uris: tuple[str, ...]
    scope: str

    def get_client_id(self) -> str:
        return self.client_id

    def get_default_redirect_uri(self) -> str | None:
        # RFC 6749 section 3.1.2.3: with several registered, the request must name one.
        return self.redirect_uris[0] if len(self.redirect_uris) == 1 else None

    def get_allowed_scope(self, scope: str | None) -> str | None:
        # RFC 6749 section 3.3: no scope means the registered default; unknown scopes are
        # dropped; nothing left is invalid_scope (authlib raises it on None). The OpenID
        # Connect scopes are known to every client.
        if not scope:
            return self.scope
        allowed = [*self.scope.split(), *_OIDC_SCOPES]
        granted = [s for s in scope.split() if s in allowed]
        return " ".join(granted) or None

    def check_redirect_uri(self, redirect_uri: str) -> bool:
        # Exact string matching, as RFC 9700 section 2.1 requires.
        return redirect_uri in self.redirect_uris

    def check_client_secret(self, client_secret: str) -> bool:
        return secrets.compare_digest(self.client_secret, client_secret)

    def check_endpoint_auth_method(self, method: str, endpoint: str) -> bool:
        # Confidential only: "none" (a public client) is refused.
        return method in ("client_secret_basic", "client_secret_post")

    def check_response_type(self, response_type: str) -> bool:
        return response_type == "code"

    def check_grant_type(self, grant_type: str) -> bool:
        return grant_type in ("authorization_code", "refresh_token")


@dataclass(frozen=True)
class _Code:
    """An authorization code and what it is bound to (RFC 6749 section 4.1.2)."""

    code: str
    client_id: str
    redirect_uri: str | None
    scope: str
    username: str
    code_challenge: str | None
    code_challenge_method: str | None
    expires_at: float
    # OpenID Connect Core section 3.1.2.1: echoed into the id_token; and section 2's
    # auth_time, the moment the user "logged in" at /authorize.
    nonce: str | None = None
    auth_time: int | None = None

    def get_redirect_uri(self) -> str | None:
        return self.redirect_uri

    def get_scope(self) -> str:
        return self.scope

    # authlib's oidc AuthorizationCodeMixin, read by OpenIDCode when it builds the id_token.
    def get_nonce(self) -> str | None:
        return self.nonce

    def get_auth_time(self) -> int | None:
        return self.auth_time

    def get_acr(self) -> None:
        return None

    def get_amr(self) -> None:
        return None


@dataclass(frozen=True)
class _Refresh:
    """A refresh token in authlib's TokenMixin shape (only what the refresh grant uses)."""

    token: str
    client_id: str
    username: str
    scope: str

    def check_client(self, client: _Client) -> bool:
        return self.client_id == client.client_id

    def get_scope(self) -> str:
        return self.scope


@dataclass
class _Access:
    username: str
    expires_at: float | None = None  # None: from issue(), never expires
    client_id: str | None = None
    scope: str | None = None

    def active(self) -> bool:
        return self.expires_at is None or self.expires_at > time.time()


class _Store:
    """Clients, codes and tokens, in memory. Every access holds the one lock: the HTTP
    server answers each request on its own thread."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.clients: dict[str, _Client] = {}
        self.codes: dict[str, _Code] = {}
        self.refresh: dict[str, _Refresh] = {}
        self.access: dict[str, _Access] = {}
        self.refresh_count = 0

    def active_access(self, token: str) -> _Access | None:
        with self.lock:
            found = self.access.get(token)
            return found if found is not None and found.active() else None

    def save_token(self, token: dict[str, Any], request: OAuth2Request) -> None:
        """Redeem the code or the old refresh token and record the new tokens, atomically:
        of two concurrent requests with one code (RFC 6749 section 4.1.2: used once) or one
        refresh token (rotation), only the first succeeds, the other gets invalid_grant."""
        client: _Client = request.client
        username: str = request.user
        scope: str = token.get("scope", "")
        with self.lock:
            if request.authorization_code is not None:
                if self.codes.pop(request.authorization_code.code, None) is None:
                    raise InvalidGrantError("The code was already used.")
            elif request.refresh_token is not None:
                if self.refresh.pop(request.refresh_token.token, None) is None:
                    raise InvalidGrantError()
                self.refresh_count += 1
            self.access[token["access_token"]] = _Access(
                username, time.time() + token.get("expires_in", 0), client.client_id, scope
            )
            if "refresh_token" in token:
                refresh = _Refresh(token["refresh_token"], client.client_id, username, scope)
                self.refresh[refresh.token] = refresh


class _Payload(OAuth2Payload):  # type: ignore[misc]
    def __init__(self, params: dict[str, list[str]]) -> None:
        self._params = params

    @property
    def data(self) -> dict[str, str]:
        return {key: values[0] for key, values in self._params.items()}

    @property
    def datalist(self) -> dict[str, list[str]]:
        return self._params


class _Request(OAuth2Request):  # type: ignore[misc]
    """authlib's view of one request: query parameters on GET, the form body on POST."""

    def __init__(self, method: str, uri: str, headers: Any, body: str = "") -> None:
        super().__init__(method, uri, headers=headers)
        self._args = _Payload(parse_qs(urlsplit(uri).query, keep_blank_values=True))
        self._form = _Payload(parse_qs(body, keep_blank_values=True))
        self.payload = self._form if method == "POST" else self._args

    @property
    def args(self) -> dict[str, str]:
        return self._args.data

    @property
    def form(self) -> dict[str, str]:
        return self._form.data


class _CodeGrant(AuthorizationCodeGrant):  # type: ignore[misc]
    def save_authorization_code(self, code: str, request: _Request) -> None:
        data = request.payload.data
        item = _Code(
            code=code,
            client_id=request.client.client_id,
            redirect_uri=request.payload.redirect_uri,
            scope=request.scope,
            username=request.user,
            code_challenge=data.get("code_challenge"),
            code_challenge_method=data.get("code_challenge_method"),
            expires_at=time.time() + _CODE_LIFETIME,
            nonce=data.get("nonce") or None,
            auth_time=int(time.time()),
        )
        with self.server.store.lock:
            self.server.store.codes[code] = item

    def query_authorization_code(self, code: str, client: _Client) -> _Code | None:
        with self.server.store.lock:
            item: _Code | None = self.server.store.codes.get(code)
        # RFC 6749 section 4.1.3: the code must have been issued to this client.
        if item is None or item.client_id != client.client_id or item.expires_at <= time.time():
            return None
        return item

    def delete_authorization_code(self, authorization_code: _Code) -> None:
        """Already redeemed in _Store.save_token."""

    def authenticate_user(self, authorization_code: _Code) -> str:
        return authorization_code.username


class _RotatingRefreshGrant(RefreshTokenGrant):  # type: ignore[misc]
    # RFC 9700 section 4.14.2: rotate, so a leaked refresh token is good for one use only.
    INCLUDE_NEW_REFRESH_TOKEN = True
    TOKEN_ENDPOINT_AUTH_METHODS: ClassVar = ["client_secret_basic", "client_secret_post"]

    def authenticate_refresh_token(self, refresh_token: str) -> _Refresh | None:
        store: _Store = self.server.store
        with store.lock:
            return store.refresh.get(refresh_token)

    def authenticate_user(self, refresh_token: _Refresh) -> str:
        return refresh_token.username

    def revoke_old_credential(self, refresh_token: _Refresh) -> None:
        """Already removed in _Store.save_token, in the same lock as the new one's saving."""


class _S256Required(CodeChallenge):  # type: ignore[misc]
    """authlib's CodeChallenge(required=True) insists only for public clients; this server
    wants PKCE from every client (RFC 9700 section 2.1.1 recommends it), and only S256."""

    def validate_code_challenge(self, grant: _CodeGrant, redirect_uri: str) -> None:
        data = grant.request.payload.data
        # RFC 7636 section 4.4.1: a missing challenge or an unsupported method is
        # invalid_request; authlib adds the (validated) redirect_uri to the error.
        if not data.get("code_challenge"):
            raise InvalidRequestError("Missing 'code_challenge'")
        if data.get("code_challenge_method") != "S256":
            raise InvalidRequestError("transform algorithm not supported")
        super().validate_code_challenge(grant, redirect_uri)


@dataclass(frozen=True)
class _UserClaims:
    email: str
    name: str


class _OpenIDCodeExtension(OpenIDCode):  # type: ignore[misc]
    """authlib's OpenID Connect extension of the code grant: after a successful exchange of
    a code issued for the ``openid`` scope it adds the ``id_token`` (OpenID Connect Core
    section 3.1.3.3). The refresh grant does not carry it, so refreshes return no id_token
    (section 12.2 makes that optional)."""

    def __init__(self, issuer: TokenIssuer) -> None:
        super().__init__(require_nonce=False)  # section 3.1.2.1: nonce is optional for code
        self._issuer = issuer

    def exists_nonce(self, nonce: str, request: _Request) -> bool:
        # Refusing a reused nonce is the relying party's check (section 3.1.3.7 step 11);
        # this provider echoes whatever it is given, so a test can replay one at the service.
        return False

    def resolve_client_private_key(self, client: _Client) -> RSAKey:
        return self._issuer._id_token_signing_key()

    def get_client_algorithm(self, client: _Client) -> str:
        return _ID_TOKEN_ALG

    def get_encode_header(self, client: _Client) -> dict[str, str]:
        # The published kid even when signing with the rogue key: a forgery that names the
        # real key, so the service must check the signature, not just look the kid up.
        return {"alg": _ID_TOKEN_ALG, "kid": self._issuer._kid}

    def get_client_claims(self, client: _Client) -> dict[str, Any]:
        # Section 2. aud is a single string, allowed when there is one audience.
        now = int(time.time())
        audience = self._issuer.id_token_audience_override or client.client_id
        return {
            "iss": self._issuer.issuer,
            "aud": audience,
            "iat": now,
            "exp": now + _ID_TOKEN_LIFETIME,
        }

    def generate_user_info(self, user: str, scope: str) -> dict[str, Any]:
        # Section 5.4: the email scope asks for email and email_verified, profile for the
        # name claims; openid alone gives only sub (section 5.1 for the claims themselves).
        scopes = scope.split()
        info: dict[str, Any] = {"sub": self._issuer.subject_for(user)}
        claims = self._issuer._claims_for(user)
        if "email" in scopes:
            info.update(email=claims.email, email_verified=True)
        if "profile" in scopes:
            info.update(name=claims.name, preferred_username=user)
        return info


class _AuthServer(AuthorizationServer):  # type: ignore[misc]
    """authlib's framework hooks, done for the stdlib HTTP server."""

    def __init__(
        self, store: _Store, lifetime: Callable[[], int], openid: _OpenIDCodeExtension
    ) -> None:
        super().__init__()
        self.store = store
        self.register_grant(_CodeGrant, [_S256Required(required=True), openid])
        self.register_grant(_RotatingRefreshGrant)
        self.register_token_generator(
            "default",
            BearerTokenGenerator(
                access_token_generator=lambda **_: "tok-" + secrets.token_urlsafe(24),
                refresh_token_generator=lambda **_: "ref-" + secrets.token_urlsafe(24),
                expires_generator=lambda client, grant_type: lifetime(),
            ),
        )

    def query_client(self, client_id: str) -> _Client | None:
        with self.store.lock:
            return self.store.clients.get(client_id)

    def save_token(self, token: dict[str, Any], request: _Request) -> None:
        self.store.save_token(token, request)

    def create_oauth2_request(self, request: _Request) -> _Request:
        return request

    def handle_response(self, status: int, body: Any, headers: list[tuple[str, str]]) -> _Response:
        data = json.dumps(body).encode() if isinstance(body, dict) else str(body).encode()
        return status, data, list(headers)

    def send_signal(self, name: str, *args: Any, **kwargs: Any) -> None:
        """No signal subscribers here."""


class TokenIssuer:
    """Access tokens by username, and an authorization server on a loopback port."""

    def __init__(self) -> None:
        self._store = _Store()
        self._lock = self._store.lock
        self._auth = _AuthServer(
            self._store, lambda: self.access_token_lifetime, _OpenIDCodeExtension(self)
        )
        # OpenID Connect Core section 10.1: id_tokens are signed; the public half goes out at
        # /jwks. The kid is the RFC 7638 thumbprint.
        self._signing_key = RSAKey.generate_key(
            2048, parameters={"use": "sig", "alg": _ID_TOKEN_ALG}, auto_kid=True
        )
        self._kid: str = self._signing_key.kid or ""
        self._rogue_key: RSAKey | None = None  # made on first use: RSA keys cost CPU
        self._users: dict[str, _UserClaims] = {}
        #: The resource owner who "logs in" at the next browser step (else ``login_hint``).
        self.next_user: str | None = None
        #: When True the resource owner refuses: RFC 6749 section 4.1.2.1 access_denied.
        self.consent_denied = False
        self.access_token_lifetime = 3600
        #: Seconds /token sleeps before answering, to let concurrent refreshes overlap.
        self.token_delay = 0.0
        #: One entry per /token call: grant_type, client_id, outcome ("ok" or error code).
        self.token_requests: list[dict[str, str | None]] = []
        #: When True id_tokens are signed with a key /jwks does not publish (under the
        #: published kid): the service must refuse them.
        self.sign_with_rogue_key = False
        #: When set, id_tokens carry this ``aud`` instead of the client_id: the service must
        #: refuse them (OpenID Connect Core section 3.1.3.7 step 3).
        self.id_token_audience_override: str | None = None
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), _handler_for(self))
        # A short poll: shutdown() waits up to one interval, and every test stops a server.
        self._thread = threading.Thread(
            target=self._server.serve_forever,
            kwargs={"poll_interval": 0.05},
            name="oauth-introspection",
            daemon=True,
        )

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    @property
    def introspection_url(self) -> str:
        return f"{self.base_url}/introspect"

    @property
    def authorize_url(self) -> str:
        return f"{self.base_url}/authorize"

    @property
    def token_url(self) -> str:
        return f"{self.base_url}/token"

    @property
    def issuer(self) -> str:
        """The ``iss`` of id_tokens and the discovery document: the base URL (OpenID Connect
        Discovery section 4.3 requires them to be identical)."""
        return self.base_url

    @property
    def jwks_url(self) -> str:
        return f"{self.base_url}/jwks"

    @property
    def discovery_url(self) -> str:
        # OpenID Connect Discovery section 4: issuer + "/.well-known/openid-configuration".
        return f"{self.base_url}/.well-known/openid-configuration"

    @property
    def refresh_count(self) -> int:
        """Successful refresh_token grants (each one rotated a refresh token)."""
        with self._lock:
            return self._store.refresh_count

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        # shutdown() waits for serve_forever to acknowledge; never started, it would wait
        # forever (this hung the sync benchmark at exit).
        if self._thread.is_alive():
            self._server.shutdown()
            self._thread.join(timeout=10)
        self._server.server_close()

    def register_client(
        self, client_id: str, client_secret: str, redirect_uris: list[str], scope: str
    ) -> None:
        """A confidential client. ``scope`` is its default and allowed scope; ``openid``,
        ``email`` and ``profile`` are allowed on top, whether listed or not."""
        client = _Client(client_id, client_secret, tuple(redirect_uris), scope)
        with self._lock:
            self._store.clients[client_id] = client

    def set_user(self, username: str, *, email: str | None = None, name: str | None = None) -> None:
        """The claims id_tokens carry for ``username``; unset ones default to the username."""
        claims = _UserClaims(email or username, name or username)
        with self._lock:
            self._users[username] = claims

    @staticmethod
    def subject_for(username: str) -> str:
        """The id_token ``sub`` of ``username``: opaque, so a service cannot mistake it for
        an address, and the same across issuers and restarts (OpenID Connect Core section 2:
        never reassigned)."""
        return "sub-" + hashlib.sha256(username.encode()).hexdigest()[:32]

    def jwks(self) -> dict[str, Any]:
        """The public JWK set served at /jwks (RFC 7517 section 5): never the rogue key."""
        return dict(KeySet([self._signing_key]).as_dict(private=False))

    def discovery_document(self) -> dict[str, Any]:
        """OpenID Connect Discovery 1.0 section 3 provider metadata."""
        with self._lock:
            registered = {s for c in self._store.clients.values() for s in c.scope.split()}
        return {
            "issuer": self.issuer,
            "authorization_endpoint": self.authorize_url,
            "token_endpoint": self.token_url,
            "jwks_uri": self.jwks_url,
            "introspection_endpoint": self.introspection_url,
            "scopes_supported": [*_OIDC_SCOPES, *sorted(registered - set(_OIDC_SCOPES))],
            "response_types_supported": ["code"],
            # Stated because the defaults (query and fragment; implicit) would be wrong.
            "response_modes_supported": ["query"],
            "grant_types_supported": ["authorization_code", "refresh_token"],
            "subject_types_supported": ["public"],
            "id_token_signing_alg_values_supported": [_ID_TOKEN_ALG],
            "token_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post"],
            "code_challenge_methods_supported": ["S256"],
            "claims_supported": [
                *("iss", "sub", "aud", "iat", "exp", "auth_time", "nonce", "at_hash"),
                *("email", "email_verified", "name", "preferred_username"),
            ],
        }

    def _claims_for(self, username: str) -> _UserClaims:
        with self._lock:
            return self._users.get(username) or _UserClaims(username, username)

    def _id_token_signing_key(self) -> RSAKey:
        if not self.sign_with_rogue_key:
            return self._signing_key
        with self._lock:
            if self._rogue_key is None:
                self._rogue_key = RSAKey.generate_key(2048)
            return self._rogue_key

    def issue(self, username: str) -> str:
        token = "tok-" + secrets.token_urlsafe(24)
        with self._lock:
            self._store.access[token] = _Access(username)
        return token

    def revoke(self, token: str) -> None:
        with self._lock:
            self._store.access.pop(token, None)

    def revoke_user(self, username: str) -> None:
        """The user withdrew consent: their codes, refresh and access tokens all die."""
        with self._lock:
            for table in (self._store.codes, self._store.refresh, self._store.access):
                for key in [k for k, v in table.items() if v.username == username]:
                    del table[key]

    def expire_access_tokens(self, username: str | None = None) -> None:
        """Make the current access tokens of ``username`` (or everyone's) expired now."""
        now = time.time()
        with self._lock:
            for access in self._store.access.values():
                if username is None or access.username == username:
                    access.expires_at = now

    def username_for(self, token: str) -> str | None:
        access = self._store.active_access(token)
        return None if access is None else access.username

    def introspect(self, token: str) -> dict[str, Any]:
        """RFC 7662 section 2.2: ``active`` plus, for an active token, who it belongs to."""
        access = self._store.active_access(token)
        if access is None:
            return {"active": False}
        answer: dict[str, Any] = {"active": True, "username": access.username}
        answer["token_type"] = "Bearer"
        if access.expires_at is not None:
            answer.update(client_id=access.client_id, scope=access.scope)
            answer["exp"] = int(access.expires_at)
        return answer

    def _authorize(self, request: _Request) -> _Response:
        """The browser step (RFC 6749 section 4.1.1); the test plays the resource owner."""
        # Who is "logged in" already, so that OpenID Connect's prompt=none succeeds for them
        # (Core section 3.1.2.1) and is login_required without one (section 3.1.2.6).
        logged_in = self.next_user or request.args.get("login_hint")
        try:
            grant = self._auth.get_consent_grant(request, end_user=logged_in)
        except OAuth2Error as error:
            # Section 4.1.2.1: without a valid client and redirect_uri, never redirect.
            if not error.redirect_uri:
                return _html_error(error.error, error.get_error_description())
            redirect: _Response = self._auth.handle_error_response(request, error)
            return redirect
        user = None  # authlib answers a refusal with access_denied
        if not self.consent_denied:
            user = logged_in
            if not user:
                return _html_error("no user", "set next_user or pass login_hint")
        response: _Response = self._auth.create_authorization_response(request, user, grant)
        return response

    def _token(self, request: _Request) -> _Response:
        """RFC 6749 sections 4.1.3 and 6, with a record of each call (never the secrets)."""
        if self.token_delay:
            time.sleep(self.token_delay)
        status, body, headers = self._auth.create_token_response(request)
        client_id = request.client.client_id if request.client else None
        client_id = client_id or request.form.get("client_id")
        client_id = client_id or extract_basic_authorization(request.headers)[0]
        record = {
            "grant_type": request.form.get("grant_type"),
            "client_id": client_id,
            "outcome": json.loads(body).get("error", "ok"),
        }
        with self._lock:
            self.token_requests.append(record)
        return status, body, headers


def _html_error(error: str, description: str) -> _Response:
    text = f"<!doctype html><title>{html.escape(error)}</title><p>{html.escape(description)}"
    return 400, text.encode(), [("Content-Type", "text/html; charset=utf-8")]


def _handler_for(issuer: TokenIssuer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            path = urlsplit(self.path).path
            if path == "/authorize":
                self._send(issuer._authorize(_Request("GET", self._uri(), self.headers)))
            elif path == "/jwks":
                self._json(issuer.jwks())
            elif path == "/.well-known/openid-configuration":
                self._json(issuer.discovery_document())
            else:
                self._send((404, b"", []))

        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length).decode("utf-8", "replace")
            if urlsplit(self.path).path == "/token":
                self._send(issuer._token(_Request("POST", self._uri(), self.headers, body)))
                return
            # Any other POST is introspection, as before /authorize and /token existed.
            token = (parse_qs(body).get("token") or [""])[0]
            self._json(issuer.introspect(token))

        def _json(self, answer: dict[str, Any]) -> None:
            self._send((200, json.dumps(answer).encode(), [("Content-Type", "application/json")]))

        def _uri(self) -> str:
            return issuer.base_url + self.path

        def _send(self, response: _Response) -> None:
            status, body, headers = response
            self.send_response(status)
            for name, value in headers:
                self.send_header(name, value)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:
            """Quiet: request lines carry codes and tokens, which must never be logged."""

    return Handler
