"""Rendering: Jinja2 templates (autoescaped) and the security headers every page carries."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote_plus

import jinja2
from fastapi import Request
from fastapi.responses import HTMLResponse, RedirectResponse
from fastapi.templating import Jinja2Templates

from casemail import __version__
from casemail.web.session import CSRF_FIELD

HERE = Path(__file__).parent
HTMX = "htmx-2.0.11.min.js"

# No inline script or style anywhere: the policy allows only our own files. Message bodies
# are never part of a page: they load in a sandboxed frame with a policy of their own.
PAGE_POLICY = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "frame-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
)
PAGE_HEADERS = {
    "Content-Security-Policy": PAGE_POLICY,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "Cache-Control": "no-store",
    "X-Frame-Options": "DENY",
}


def _when(value: datetime | None) -> str:
    return value.strftime("%Y-%m-%d %H:%M UTC") if value is not None else ""


def _environment() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(HERE / "templates"),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
    )
    env.filters["when"] = _when
    return env


templates = Jinja2Templates(env=_environment())


def page(
    request: Request, name: str, context: dict[str, Any], *, status_code: int = 200
) -> HTMLResponse:
    values = {"version": __version__, "htmx": HTMX, "csrf_field": CSRF_FIELD, **context}
    values.setdefault("visitor", None)
    values.setdefault("csrf", "")
    values.setdefault("notice", None)
    response = templates.TemplateResponse(request, name, values, status_code=status_code)
    response.headers.update(PAGE_HEADERS)
    return response


def see(path: str, notice: str | None = None) -> RedirectResponse:
    """After a form: 303 See Other (a reload does not post it again), with a ``notice``
    for the next page to show."""
    target = f"{path}?notice={quote_plus(notice[:400])}" if notice else path
    return RedirectResponse(target, status_code=303)
