"""Helpers shared by the CLI commands: settings, context, output."""

from __future__ import annotations

import json
from typing import Any, NoReturn

import typer
from pydantic import BaseModel, ValidationError
from sqlalchemy import make_url
from sqlalchemy.exc import OperationalError

from casemail.accounts.secrets import SecretsError
from casemail.bootstrap import AppContext, build_context, configure_logging
from casemail.config import Settings


def load_settings(**overrides: Any) -> Settings:
    try:
        return Settings(**{k: v for k, v in overrides.items() if v is not None})
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors()
        )
        fail(f"invalid settings: {problems}")


def context(**overrides: Any) -> AppContext:
    settings = load_settings(**overrides)
    configure_logging("WARNING" if settings.log_level.upper() == "INFO" else settings.log_level)
    try:
        return build_context(settings)
    except OperationalError as exc:
        url = make_url(settings.resolved_database_url).render_as_string(hide_password=True)
        fail(f"cannot use the database at {url}: {str(exc.orig).strip().splitlines()[0]}")
    except SecretsError as exc:
        fail(str(exc))


def fail(message: str, code: int = 1) -> NoReturn:
    typer.secho(f"error: {message}", fg=typer.colors.RED, err=True)
    raise typer.Exit(code)


def emit_json(value: Any) -> None:
    def encode(item: Any) -> Any:
        if isinstance(item, BaseModel):
            return item.model_dump(mode="json")
        if isinstance(item, list):
            return [encode(i) for i in item]
        if isinstance(item, dict):
            return {k: encode(v) for k, v in item.items()}
        return item

    typer.echo(json.dumps(encode(value), indent=2, ensure_ascii=False))
