"""A TestClient on a real database with a valid token, shared by the API tests.

The ``api`` fixture records every response and checks after each test that neither the
API token nor its stored hash ever appeared in a body or a header.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from email.message import EmailMessage
from pathlib import Path
from typing import Any, Literal

import httpx
import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy import select
from sqlalchemy.orm import Session

from casemail.api.app import create_app
from casemail.auth.tokens import create_token
from casemail.bootstrap import AppContext, build_context
from casemail.channels.service import add_channel
from casemail.config import Settings
from casemail.db import Database
from casemail.db.models import User
from casemail.ingest import IngestResult, Source, ingest_raw
from casemail.users.service import create_user
from tests.support import wire_bytes


@dataclass
class Api:
    """A TestClient on a real database, with a valid token and a log of every response."""

    client: TestClient
    app: FastAPI
    context: AppContext
    token: str
    token_hash: str
    responses: list[httpx.Response] = field(default_factory=list)

    def record(self, response: httpx.Response) -> None:
        """Kept for the check at the end that no secret left the service."""
        response.read()
        self.responses.append(response)

    def watch(self, client: TestClient) -> TestClient:
        """Another client (its own cookies) whose responses are checked as this one's."""
        client.event_hooks = {"request": [], "response": [self.record]}
        return client

    @property
    def db(self) -> Database:
        return self.context.db

    @property
    def auth(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}

    def get(self, path: str, **kwargs: Any) -> httpx.Response:
        headers = {**self.auth, **kwargs.pop("headers", {})}
        response: httpx.Response = self.client.get(path, headers=headers, **kwargs)
        return response

    def patch(self, path: str, **kwargs: Any) -> httpx.Response:
        headers = {**self.auth, **kwargs.pop("headers", {})}
        response: httpx.Response = self.client.patch(path, headers=headers, **kwargs)
        return response

    def post(self, path: str, **kwargs: Any) -> httpx.Response:
        headers = {**self.auth, **kwargs.pop("headers", {})}
        response: httpx.Response = self.client.post(path, headers=headers, **kwargs)
        return response

    def put(self, path: str, **kwargs: Any) -> httpx.Response:
        headers = {**self.auth, **kwargs.pop("headers", {})}
        response: httpx.Response = self.client.put(path, headers=headers, **kwargs)
        return response

    def delete(self, path: str, **kwargs: Any) -> httpx.Response:
        headers = {**self.auth, **kwargs.pop("headers", {})}
        response: httpx.Response = self.client.delete(path, headers=headers, **kwargs)
        return response

    def channel(self, address: str = "support@example.com", **kwargs: Any) -> int:
        with self.db.write() as session:
            return add_channel(session, address=address, **kwargs).id

    def deliver(self, channel_id: int, raw: bytes | EmailMessage) -> IngestResult:
        data = wire_bytes(raw) if isinstance(raw, EmailMessage) else raw
        return ingest_raw(self.db, channel_id, data, Source("api"))


TEST_ADMIN = "api-admin@tests.example"


def admin_token(session: Session, *, company_id: int = 1, email: str = TEST_ADMIN) -> str:
    """An API token of an admin of the company (the admin is made on first use)."""
    return user_token(session, company_id=company_id, email=email, role="admin")


def user_token(
    session: Session, *, company_id: int, email: str, role: Literal["admin", "agent"]
) -> str:
    """An API token of the user ``email`` (made on first use, with ``role``)."""
    user = session.scalar(select(User).where(User.email == email))
    if user is None:
        user = create_user(
            session, name=email.split("@")[0], email=email, role=role, company_id=company_id
        )
    return create_token(session, name="tests", user_id=user.id)


@pytest.fixture
def api(db_url: str, tmp_path: Path) -> Iterator[Api]:
    context = build_context(Settings(home=tmp_path / "home", database_url=db_url))
    with context.db.write() as session:
        token = admin_token(session)
    token_hash = hashlib.sha256(token.encode()).hexdigest()
    app = create_app(context)
    with TestClient(app) as client:
        api = Api(client, app, context, token, token_hash)
        api.watch(client)
        yield api
    responses = api.responses
    context.db.dispose()
    # No secret may leave the service, in any response of the test, success or error.
    assert responses, "the test made no request"
    for response in responses:
        exposed = response.text + "\n" + "\n".join(f"{k}: {v}" for k, v in response.headers.items())
        where = f"{response.request.method} {response.request.url}"
        assert api_token_absent(exposed, token, token_hash), f"secret in response to {where}"


def api_token_absent(text: str, token: str, token_hash: str) -> bool:
    secret_part = token.removeprefix("cm_")
    return token not in text and secret_part not in text and token_hash not in text


def api_operations(api: Api) -> list[tuple[str, str]]:
    """Every operation under /api/v1 the app documents, core or added later."""
    spec = api.client.get("/api/v1/openapi.json").json()
    return sorted(
        (method.upper(), path)
        for path, operations in spec["paths"].items()
        if path.startswith("/api/v1")
        for method in operations
    )
