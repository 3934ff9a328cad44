"""Errors on web pages are pages: a sign-in redirect, or an error page in words (the API
keeps its JSON errors)."""

from __future__ import annotations

from urllib.parse import quote

from fastapi import FastAPI, Request
from fastapi.exception_handlers import (
    http_exception_handler,
    request_validation_exception_handler,
)
from fastapi.exceptions import RequestValidationError
from fastapi.responses import RedirectResponse, Response
from starlette.exceptions import HTTPException

from casemail.web.auth import SignInNeeded
from casemail.web.pages import page

TITLES = {403: "Not allowed", 404: "Not found", 422: "Cannot do that", 405: "Not allowed"}


def _on_web_page(request: Request) -> bool:
    return request.url.path == "/ui" or request.url.path.startswith("/ui/")


def install(app: FastAPI) -> None:
    @app.exception_handler(SignInNeeded)
    async def sign_in_needed(request: Request, exc: SignInNeeded) -> Response:
        target = "/ui/signin?next=" + quote(exc.path, safe="/")
        if request.headers.get("HX-Request") == "true":
            return Response(status_code=401, headers={"HX-Redirect": target})
        return RedirectResponse(target, status_code=303)

    @app.exception_handler(HTTPException)
    async def http_error(request: Request, exc: HTTPException) -> Response:
        if not _on_web_page(request):
            return await http_exception_handler(request, exc)
        title = TITLES.get(exc.status_code, "Something went wrong")
        values = {"title": title, "detail": str(exc.detail)}
        return page(request, "error.html", values, status_code=exc.status_code)

    @app.exception_handler(RequestValidationError)
    async def bad_form(request: Request, exc: RequestValidationError) -> Response:
        if not _on_web_page(request):
            return await request_validation_exception_handler(request, exc)
        words = "; ".join(
            f"{'.'.join(str(p) for p in error.get('loc', ())[1:]) or 'form'}: {error.get('msg')}"
            for error in exc.errors()
        )
        values = {"title": "Cannot do that", "detail": words}
        return page(request, "error.html", values, status_code=422)
