"""The FastAPI application."""

from __future__ import annotations

from fastapi import FastAPI
from fastapi.responses import JSONResponse
from sqlalchemy import text

from casemail import __version__
from casemail.api.routes import router
from casemail.api.schemas import Health
from casemail.bootstrap import AppContext


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
