"""Who is signed in to the web app, and the checks every page and form goes through."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Annotated
from urllib.parse import urlsplit

from fastapi import Depends, HTTPException, Request, status
from sqlalchemy.orm import Session

from casemail.api.deps import Context
from casemail.auth.principal import Principal, principal_of
from casemail.auth.tenancy import scope_to_company
from casemail.db.models import User
from casemail.identity import load_identity
from casemail.web.session import (
    CSRF_HEADER,
    SESSION_COOKIE,
    SessionSigner,
    WebSession,
    password_fingerprint,
    same_token,
)


class SignInNeeded(Exception):
    """Raised by a page for a visitor without a valid session: answered with a redirect."""

    def __init__(self, path: str) -> None:
        super().__init__(path)
        self.path = path


def signer(request: Request, context: Context) -> SessionSigner:
    found = getattr(request.app.state, "web_signer", None)
    if isinstance(found, SessionSigner):
        return found
    with context.db.read() as session:
        made = SessionSigner(load_identity(session).token_key)
    request.app.state.web_signer = made
    return made


Signer = Annotated[SessionSigner, Depends(signer)]


@dataclass(frozen=True)
class Visitor:
    principal: Principal
    session: WebSession


def current_visitor(request: Request, context: Context, signer: Signer) -> Visitor:
    """The signed-in user; a missing, forged, expired or outdated session (password changed,
    user deactivated) sends the browser to the sign-in page."""
    web = signer.read_session(request.cookies.get(SESSION_COOKIE))
    if web is None:
        raise SignInNeeded(request.url.path)
    with context.db.read() as session:
        user = session.get(User, web.user_id)
        principal = principal_of(user) if user is not None else None
        current = password_fingerprint(user.password_hash) if user is not None else ""
    if principal is None or not same_token(current, web.fingerprint):
        raise SignInNeeded(request.url.path)
    return Visitor(principal, web)


CurrentVisitor = Annotated[Visitor, Depends(current_visitor)]


def admin_visitor(visitor: CurrentVisitor) -> Visitor:
    if not visitor.principal.is_admin:
        raise HTTPException(status.HTTP_403_FORBIDDEN, "Only an admin may open this page")
    return visitor


AdminVisitor = Annotated[Visitor, Depends(admin_visitor)]


def check_form(request: Request, visitor: Visitor, form_token: str | None) -> None:
    """CSRF: the session's token in the form (or header), and no foreign Origin."""
    check_origin(request)
    given = form_token or request.headers.get(CSRF_HEADER)
    if not same_token(visitor.session.csrf, given):
        raise HTTPException(
            status.HTTP_403_FORBIDDEN,
            "The form has expired or did not come from this site: reload the page and try again",
        )


def check_origin(request: Request) -> None:
    """Browsers send Origin on every POST (Fetch standard); it must be this site."""
    origin = request.headers.get("origin")
    if origin is None:
        return  # an old browser or a script: the CSRF token still decides
    if origin == "null" or urlsplit(origin).netloc != request.url.netloc:
        raise HTTPException(status.HTTP_403_FORBIDDEN, "Cross-site form submissions are refused")


def company_session(
    request: Request, context: Context, visitor: CurrentVisitor
) -> Iterator[Session]:
    """Scoped to the visitor's company; pages read, forms write (a write session takes
    SQLite's write lock at once, which a page view has no need to hold)."""
    opened = context.db.read() if request.method == "GET" else context.db.write()
    with opened as session:
        yield scope_to_company(session, visitor.principal.company_id)


# Committed before the response (see api.deps): the page a redirect leads to sees the change.
CompanySession = Annotated[Session, Depends(company_session, scope="function")]
