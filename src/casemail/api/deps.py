"""Request dependencies: the caller (an API token's user) and sessions scoped to their company."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Annotated

from fastapi import Depends, HTTPException, Request, status
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy.orm import Session

from casemail.auth.principal import Principal, principal_for_token
from casemail.auth.tenancy import DEFAULT_COMPANY_ID, scope_to_company
from casemail.bootstrap import AppContext

_bearer = HTTPBearer(auto_error=False, description="An API token from `casemail token create`.")


def app_context(request: Request) -> AppContext:
    context: AppContext = request.app.state.context
    return context


Context = Annotated[AppContext, Depends(app_context)]


def require_principal(
    context: Context,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> Principal:
    """The user behind an API request: its token's user (the web app has its own sessions,
    casemail.web.auth)."""
    if credentials is None or credentials.scheme.lower() != "bearer":
        raise HTTPException(
            status.HTTP_401_UNAUTHORIZED,
            "Missing API token: send 'Authorization: Bearer <token>'",
            headers={"WWW-Authenticate": "Bearer"},
        )
    with context.db.write() as session:
        principal = principal_for_token(session, credentials.credentials)
    if principal is None:
        raise HTTPException(
            status.HTTP_401_UNAUTHORIZED,
            "Invalid or revoked API token",
            headers={"WWW-Authenticate": "Bearer"},
        )
    return principal


Caller = Annotated[Principal, Depends(require_principal)]


def require_admin(caller: Caller) -> Principal:
    if not caller.is_admin:
        raise HTTPException(status.HTTP_403_FORBIDDEN, "Only an admin may do this")
    return caller


Admin = Annotated[Principal, Depends(require_admin)]


def read_session(context: Context, caller: Caller) -> Iterator[Session]:
    with context.db.read() as session:
        yield scope_to_company(session, caller.company_id)


def write_session(context: Context, caller: Caller) -> Iterator[Session]:
    with context.db.write() as session:
        yield scope_to_company(session, caller.company_id)


def unscoped_write_session(context: Context) -> Iterator[Session]:
    """For the few routes a browser reaches without a user (OAuth sign-in and callback):
    what they may touch is decided by the one-time state they carry, not by a company."""
    with context.db.write() as session:
        yield session


def require_operator(caller: Admin) -> Principal:
    """Installation-wide settings (outbox suspension, app registrations for every company)
    belong to the admins of the installation's own company."""
    if caller.company_id != DEFAULT_COMPANY_ID:
        raise HTTPException(
            status.HTTP_403_FORBIDDEN,
            "Only an admin of the installation's own company may change this",
        )
    return caller


Operator = Annotated[Principal, Depends(require_operator)]
# scope="function": the session closes (and a write session commits) before the response is
# sent. FastAPI's default closes it after, so a client could read before the commit, or get
# a 2xx for a change whose commit then failed.
ReadSession = Annotated[Session, Depends(read_session, scope="function")]
WriteSession = Annotated[Session, Depends(write_session, scope="function")]
UnscopedWriteSession = Annotated[Session, Depends(unscoped_write_session, scope="function")]
