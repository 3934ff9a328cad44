"""The FastAPI application."""

from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response
from fastapi.staticfiles import StaticFiles
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from sqlalchemy import text
from sqlalchemy.exc import DataError

from casemail import __version__
from casemail.accounts.rules import AccountError
from casemail.accounts.secrets import SecretsError
from casemail.api import accounts, attachments, oauth, outbox, people, quarantine, webhooks
from casemail.api.deps import Operator
from casemail.api.routes import router
from casemail.api.schemas import Health
from casemail.bootstrap import AppContext
from casemail.metrics import DatabaseCollector
from casemail.users.service import UserError
from casemail.web import admin as web_admin
from casemail.web import errors as web_errors
from casemail.web import routes as web_routes
from casemail.web import wizard as web_wizard

STATIC = Path(web_routes.__file__).parent / "static"


def create_app(context: AppContext) -> FastAPI:
    app = FastAPI(
        title="casemail",
        version=__version__,
        summary="Mailboxes in, cases out.",
        openapi_url="/api/v1/openapi.json",
        docs_url="/api/v1/docs",
        redoc_url=None,
    )
    app.state.context = context
    app.include_router(router)
    app.include_router(accounts.router)
    app.include_router(people.router)
    app.include_router(outbox.router)
    app.include_router(quarantine.router)
    app.include_router(attachments.router)
    app.include_router(webhooks.router)
    app.include_router(oauth.clients_router)
    app.include_router(oauth.connect_router)
    app.include_router(oauth.callback_router)
    app.include_router(web_routes.router)
    app.include_router(web_wizard.router)
    app.include_router(web_admin.router)
    app.mount("/ui/static", StaticFiles(directory=STATIC), name="static")
    _error_handlers(app)
    web_errors.install(app)

    @app.get(
        "/metrics",
        tags=["health"],
        response_class=Response,
        responses={200: {"content": {CONTENT_TYPE_LATEST: {}}, "description": "Prometheus"}},
    )
    def metrics(caller: Operator) -> Response:
        """Prometheus metrics of the whole installation (read from the database, so they
        cover every process). Scrape with an API token of an admin of the first company."""
        registry = CollectorRegistry(auto_describe=True)
        registry.register(DatabaseCollector(context.db))
        return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)

    @app.get("/healthz", response_model=Health, tags=["health"])
    def healthz() -> JSONResponse:
        try:
            with context.db.read() as session:
                session.execute(text("SELECT 1"))
            database = "ok"
        except Exception as exc:  # noqa: BLE001 - health reports the failure, never raises
            database = f"error: {type(exc).__name__}"
        body = Health(status="ok" if database == "ok" else "degraded", database=database)
        return JSONResponse(body.model_dump(), status_code=200 if database == "ok" else 503)

    return app


def _error_handlers(app: FastAPI) -> None:
    """Service errors become JSON with the words for people and the field to fix."""

    @app.exception_handler(AccountError)
    async def account_error(request: Request, exc: AccountError) -> JSONResponse:
        return JSONResponse({"detail": str(exc), "field": exc.field}, status_code=exc.status)

    @app.exception_handler(UserError)
    async def user_error(request: Request, exc: UserError) -> JSONResponse:
        return JSONResponse({"detail": str(exc)}, status_code=exc.status)

    @app.exception_handler(DataError)
    async def out_of_range(request: Request, exc: DataError) -> JSONResponse:
        # A number past the column's range (PostgreSQL's integer is 32 bits; SQLite takes
        # 64): the request is wrong, not the service. Only the kind of problem is said.
        words = "a value in the request is out of range (ids are at most 2147483647)"
        return JSONResponse({"detail": words}, status_code=422)

    @app.exception_handler(SecretsError)
    async def secrets_error(request: Request, exc: SecretsError) -> JSONResponse:
        # The key setup is broken, not the request: say so without any key material.
        return JSONResponse({"detail": str(exc)}, status_code=500)
