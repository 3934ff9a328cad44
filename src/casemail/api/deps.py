"""Request dependencies: the database and the caller's API token."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Annotated

from fastapi import Depends, HTTPException, Request, status
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy.orm import Session

from casemail.auth.tokens import verify_token
from casemail.bootstrap import AppContext
from casemail.db.models import ApiToken

_bearer = HTTPBearer(auto_error=False, description="An API token from `casemail token create`.")


def app_context(request: Request) -> AppContext:
    context: AppContext = request.app.state.context
    return context


Context = Annotated[AppContext, Depends(app_context)]


def read_session(context: Context) -> Iterator[Session]:
    with context.db.read() as session:
        yield session


def write_session(context: Context) -> Iterator[Session]:
    with context.db.write() as session:
        yield session


def require_token(
    context: Context,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> ApiToken:
    if credentials is None or credentials.scheme.lower() != "bearer":
        raise HTTPException(
            status.HTTP_401_UNAUTHORIZED,
            "Missing API token: send 'Authorization: Bearer <token>'",
            headers={"WWW-Authenticate": "Bearer"},
        )
    with context.db.write() as session:
        token = verify_token(session, credentials.credentials)
        if token is None:
            raise HTTPException(
                status.HTTP_401_UNAUTHORIZED,
                "Invalid or revoked API token",
                headers={"WWW-Authenticate": "Bearer"},
            )
        return token


ReadSession = Annotated[Session, Depends(read_session)]
WriteSession = Annotated[Session, Depends(write_session)]
Caller = Annotated[ApiToken, Depends(require_token)]
