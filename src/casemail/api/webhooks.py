"""/api/v1/webhooks: a company's webhooks and their delivery log (admins only)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException, Query, status
from pydantic import BaseModel, Field
from sqlalchemy import select

from casemail.api.deps import Context, ReadSession, WriteSession, require_admin
from casemail.api.schemas import ErrorBody
from casemail.db.models import Webhook, WebhookDelivery
from casemail.db.types import utcnow
from casemail.webhooks import service
from casemail.webhooks.delivery import retry_now
from casemail.webhooks.service import WebhookCreate, WebhookError, WebhookUpdate

router = APIRouter(
    prefix="/api/v1/webhooks",
    tags=["webhooks"],
    dependencies=[Depends(require_admin)],
    responses={
        401: {"model": ErrorBody, "description": "Missing or invalid API token"},
        403: {"model": ErrorBody, "description": "Only an admin may do this"},
        404: {"model": ErrorBody, "description": "No such webhook or delivery"},
        422: {"model": ErrorBody, "description": "Invalid URL or events"},
    },
)


class WebhookPublic(BaseModel):
    id: int
    url: str
    events: list[str]
    active: bool
    created_at: datetime
    updated_at: datetime


class WebhookWithSecret(WebhookPublic):
    secret: str = Field(description="Signs every delivery; shown this once.")


class DeliveryPublic(BaseModel):
    id: int
    webhook_id: int
    event: str
    state: str
    attempts: int
    next_attempt_at: datetime
    last_status: int | None
    last_error: str | None
    created_at: datetime
    delivered_at: datetime | None
    payload: dict[str, Any]


def _public(hook: Webhook) -> WebhookPublic:
    return WebhookPublic(
        id=hook.id,
        url=hook.url,
        events=list(hook.events),
        active=hook.active,
        created_at=hook.created_at,
        updated_at=hook.updated_at,
    )


def _delivery(row: WebhookDelivery) -> DeliveryPublic:
    return DeliveryPublic(
        id=row.id,
        webhook_id=row.webhook_id,
        event=row.event,
        state=row.state,
        attempts=row.attempts,
        next_attempt_at=row.next_attempt_at,
        last_status=row.last_status,
        last_error=row.last_error,
        created_at=row.created_at,
        delivered_at=row.delivered_at,
        payload=row.payload,
    )


def _find(session: ReadSession, webhook_id: int) -> Webhook:
    try:
        return service.find_webhook(session, webhook_id)
    except WebhookError as exc:
        raise HTTPException(exc.status, str(exc)) from exc


@router.get("", response_model=list[WebhookPublic])
def list_webhooks(session: ReadSession) -> list[WebhookPublic]:
    return [_public(h) for h in session.scalars(select(Webhook).order_by(Webhook.id))]


@router.post("", response_model=WebhookWithSecret, status_code=status.HTTP_201_CREATED)
def create(body: WebhookCreate, session: WriteSession, ctx: Context) -> WebhookWithSecret:
    """Register a URL for events; the answer carries the signing secret, this once."""
    try:
        hook, secret = service.create_webhook(
            session, body, keys=ctx.keys, allow_private=ctx.settings.private_hosts_allowed
        )
    except WebhookError as exc:
        raise HTTPException(exc.status, str(exc)) from exc
    return WebhookWithSecret(**_public(hook).model_dump(), secret=secret)


@router.get("/{webhook_id}", response_model=WebhookPublic)
def get(webhook_id: int, session: ReadSession) -> WebhookPublic:
    return _public(_find(session, webhook_id))


@router.patch("/{webhook_id}", response_model=WebhookPublic | WebhookWithSecret)
def update(
    webhook_id: int, body: WebhookUpdate, session: WriteSession, ctx: Context
) -> WebhookPublic | WebhookWithSecret:
    hook = _find(session, webhook_id)
    try:
        secret = service.update_webhook(
            session, hook, body, keys=ctx.keys, allow_private=ctx.settings.private_hosts_allowed
        )
    except WebhookError as exc:
        raise HTTPException(exc.status, str(exc)) from exc
    public = _public(hook)
    return WebhookWithSecret(**public.model_dump(), secret=secret) if secret else public


@router.delete("/{webhook_id}", status_code=status.HTTP_204_NO_CONTENT)
def delete(webhook_id: int, session: WriteSession) -> None:
    service.delete_webhook(session, _find(session, webhook_id))


@router.post("/{webhook_id}/ping", response_model=DeliveryPublic, status_code=202)
def ping(webhook_id: int, session: WriteSession) -> DeliveryPublic:
    """Queue a "ping" delivery to try the receiver; follow it in the delivery log."""
    delivery_id = service.ping(session, _find(session, webhook_id))
    return _delivery(session.get_one(WebhookDelivery, delivery_id))


@router.get("/{webhook_id}/deliveries", response_model=list[DeliveryPublic])
def deliveries(
    webhook_id: int,
    session: ReadSession,
    state: Annotated[str | None, Query(pattern="^(pending|delivered|failed)$")] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
) -> list[DeliveryPublic]:
    """The delivery log, newest first."""
    _find(session, webhook_id)
    query = select(WebhookDelivery).where(WebhookDelivery.webhook_id == webhook_id)
    if state is not None:
        query = query.where(WebhookDelivery.state == state)
    rows = session.scalars(query.order_by(WebhookDelivery.id.desc()).limit(limit))
    return [_delivery(row) for row in rows]


@router.post("/{webhook_id}/deliveries/{delivery_id}/retry", response_model=DeliveryPublic)
def retry(webhook_id: int, delivery_id: int, session: WriteSession) -> DeliveryPublic:
    """Send a failed (or waiting) delivery again now."""
    _find(session, webhook_id)
    row = session.get(WebhookDelivery, delivery_id)
    if row is None or row.webhook_id != webhook_id:
        raise HTTPException(404, f"no delivery {delivery_id} of webhook {webhook_id}")
    if row.state == "delivered":
        raise HTTPException(409, f"delivery {delivery_id} was delivered already")
    retry_now(row, utcnow())
    return _delivery(row)
