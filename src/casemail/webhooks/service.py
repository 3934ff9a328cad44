"""Register, change and remove webhooks; read their delivery log."""

from __future__ import annotations

from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import delete
from sqlalchemy.orm import Session

from casemail.accounts.hosts import HostNotAllowed, HostNotFound, check_host
from casemail.accounts.secrets import KeyRing
from casemail.auth.tenancy import owning_company
from casemail.db.models import Webhook, WebhookDelivery
from casemail.db.types import utcnow
from casemail.webhooks.events import EVENTS, EventName
from casemail.webhooks.secrets import new_secret, store_secret


class WebhookError(ValueError):
    def __init__(self, message: str, *, status: int = 422) -> None:
        super().__init__(message)
        self.status = status


class WebhookCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")
    url: str = Field(min_length=8, max_length=2000, description="https:// (or http://) URL")
    events: list[EventName] = Field(min_length=1, description=f"Any of {', '.join(EVENTS)}")


class WebhookUpdate(BaseModel):
    model_config = ConfigDict(extra="forbid")
    url: str | None = Field(None, min_length=8, max_length=2000)
    events: list[EventName] | None = Field(None, min_length=1)
    active: bool | None = None
    new_secret: bool = Field(False, description="Replace the signing secret (shown once)")


def check_url(url: str, *, allow_private: bool) -> str:
    parts = urlsplit(url.strip())
    if parts.scheme not in ("https", "http") or not parts.hostname:
        raise WebhookError("the URL must start with https:// (or http://) and name a host")
    if parts.username or parts.password:
        raise WebhookError("put no credentials in the URL: the signature authenticates us")
    try:
        check_host(parts.hostname, parts.port or 443, allow_private=allow_private)
    except (HostNotAllowed, HostNotFound) as exc:
        raise WebhookError(str(exc)) from exc
    return url.strip()


def create_webhook(
    session: Session, data: WebhookCreate, *, keys: KeyRing, allow_private: bool
) -> tuple[Webhook, str]:
    """The webhook and its secret (shown this once)."""
    hook = Webhook(
        company_id=owning_company(session),
        url=check_url(data.url, allow_private=allow_private),
        events=sorted(set(data.events)),
        active=True,
    )
    session.add(hook)
    session.flush()
    secret = new_secret()
    store_secret(hook, secret, keys)
    return hook, secret


def update_webhook(
    session: Session, hook: Webhook, data: WebhookUpdate, *, keys: KeyRing, allow_private: bool
) -> str | None:
    """Returns the new secret when one was asked for."""
    if data.url is not None:
        hook.url = check_url(data.url, allow_private=allow_private)
    if data.events is not None:
        hook.events = sorted(set(data.events))
    if data.active is not None:
        hook.active = data.active
    hook.updated_at = utcnow()
    secret = new_secret() if data.new_secret else None
    if secret is not None:
        store_secret(hook, secret, keys)
    session.flush()
    return secret


def delete_webhook(session: Session, hook: Webhook) -> None:
    """The webhook and its delivery log."""
    session.execute(delete(WebhookDelivery).where(WebhookDelivery.webhook_id == hook.id))
    session.delete(hook)
    session.flush()


def find_webhook(session: Session, webhook_id: int) -> Webhook:
    hook = session.get(Webhook, webhook_id)
    if hook is None:
        raise WebhookError(f"no webhook {webhook_id}", status=404)
    return hook


def ping(session: Session, hook: Webhook) -> int:
    """Queue a "ping" for this webhook alone (to try the receiver)."""
    now = utcnow()
    delivery = WebhookDelivery(
        webhook_id=hook.id,
        event="ping",
        payload={"event": "ping", "occurred_at": now.isoformat(), "company_id": hook.company_id},
        state="pending",
        attempts=0,
        next_attempt_at=now,
        created_at=now,
    )
    session.add(delivery)
    session.flush()
    return delivery.id
