"""/api/v1/accounts: mail accounts, their connection tests and autodetection."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, status
from sqlalchemy import select
from sqlalchemy.orm import Session

from casemail.accounts import autodetect, checks, service
from casemail.accounts.endpoint import TestOutcome
from casemail.accounts.public import to_public
from casemail.accounts.rules import AccountError
from casemail.accounts.schemas import (
    AccountCreate,
    AccountPublic,
    AccountUpdate,
    AutodetectRequest,
    TakeOverRequest,
    TakeOverResult,
    TestOutgoingRequest,
    TestResultPublic,
)
from casemail.api.deps import Context, ReadSession, WriteSession, require_admin
from casemail.api.schemas import ErrorBody
from casemail.bootstrap import AppContext
from casemail.db.models import Account
from casemail.mailboxes.health import AccountHealth, account_health
from casemail.mailboxes.runner import NotSyncable, build_job, reset_counter, sync_now
from casemail.mailboxes.takeover import take_over_mailbox
from casemail.oauth.tokens import TokenError

router = APIRouter(
    prefix="/api/v1/accounts",
    tags=["accounts"],
    dependencies=[Depends(require_admin)],
    responses={
        401: {"model": ErrorBody, "description": "Missing or invalid API token"},
        403: {"model": ErrorBody, "description": "Only an admin may do this"},
        404: {"model": ErrorBody, "description": "No such account"},
        409: {"model": ErrorBody, "description": "Conflicts with another account"},
        422: {"model": ErrorBody, "description": "Invalid settings; `field` names what to fix"},
    },
)


def _get(session: Session, account_id: int) -> Account:
    account = session.get(Account, account_id)
    if account is None:
        raise AccountError(f"no account {account_id}", status=404)
    return account


def _public(ctx: AppContext, account: Account, warnings: list[str] | None = None) -> AccountPublic:
    public = to_public(account, service.stored_secrets(account, ctx.keys))
    public.warnings.extend(warnings or [])
    return public


def _result(outcome: TestOutcome) -> TestResultPublic:
    return TestResultPublic(
        ok=outcome.ok,
        direction=outcome.direction,
        field=outcome.field,
        message=outcome.message,
        details=outcome.details,
    )


@router.get("", response_model=list[AccountPublic])
def list_accounts(
    ctx: Context,
    session: ReadSession,
    include_inactive: Annotated[bool, Query(description="Also deactivated accounts.")] = False,
) -> list[AccountPublic]:
    query = select(Account).order_by(Account.id)
    if not include_inactive:
        query = query.where(Account.deactivated_at.is_(None))
    return [_public(ctx, a) for a in session.scalars(query)]


@router.post("", response_model=AccountPublic, status_code=status.HTTP_201_CREATED)
def create_account(body: AccountCreate, ctx: Context, session: WriteSession) -> AccountPublic:
    allow = ctx.settings.private_hosts_allowed
    account, warnings = service.create_account(session, body, keys=ctx.keys, allow_private=allow)
    return _public(ctx, account, warnings)


@router.get("/{account_id}", response_model=AccountPublic)
def get_account(account_id: int, ctx: Context, session: ReadSession) -> AccountPublic:
    return _public(ctx, _get(session, account_id))


@router.patch("/{account_id}", response_model=AccountPublic)
def update_account(
    account_id: int, body: AccountUpdate, ctx: Context, session: WriteSession
) -> AccountPublic:
    account = _get(session, account_id)
    allow = ctx.settings.private_hosts_allowed
    warnings = service.update_account(session, account, body, keys=ctx.keys, allow_private=allow)
    return _public(ctx, account, warnings)


@router.post("/{account_id}/deactivate", response_model=AccountPublic)
def deactivate_account(account_id: int, ctx: Context, session: WriteSession) -> AccountPublic:
    account = _get(session, account_id)
    service.deactivate(session, account)
    return _public(ctx, account)


@router.post("/{account_id}/default", response_model=AccountPublic)
def make_default(account_id: int, ctx: Context, session: WriteSession) -> AccountPublic:
    account = _get(session, account_id)
    service.set_default(session, account)
    return _public(ctx, account)


@router.post("/{account_id}/take-over", response_model=TakeOverResult)
def take_over(
    account_id: int, body: TakeOverRequest, ctx: Context, session: WriteSession
) -> TakeOverResult:
    """Continue another account's mailbox (the switch from password to OAuth2): its sync
    records and channels move here, it stops fetching, nothing is fetched twice. Then test
    this account, make it the default and deactivate the old one."""
    account = _get(session, account_id)
    done = take_over_mailbox(session, account, _get(session, body.from_account))
    return TakeOverResult(
        account=_public(ctx, account),
        folders=done.folders,
        items=done.items,
        channels=done.channels,
    )


@router.delete("/{account_id}", status_code=status.HTTP_204_NO_CONTENT)
def delete_account(account_id: int, session: WriteSession) -> None:
    service.delete_account(session, _get(session, account_id))


@router.post("/{account_id}/test-incoming", response_model=TestResultPublic)
async def test_incoming(account_id: int, ctx: Context, session: ReadSession) -> TestResultPublic:
    _get(session, account_id)
    return _result(await checks.test_incoming(ctx, account_id))


@router.post("/{account_id}/test-outgoing", response_model=TestResultPublic)
async def test_outgoing(
    account_id: int, body: TestOutgoingRequest, ctx: Context, session: ReadSession
) -> TestResultPublic:
    _get(session, account_id)
    return _result(await checks.test_outgoing(ctx, account_id, to=body.to))


@router.post("/autodetect")
async def detect(body: AutodetectRequest, ctx: Context) -> dict[str, Any]:
    """Find server settings for an address: preset, DNS SRV (RFC 6186), MX, autoconfig,
    then probing; says where the answer came from and how sure it is."""
    return await autodetect.detect_for_api(ctx, body.email, probe=body.probe)


@router.get("/{account_id}/health", response_model=AccountHealth)
def health(account_id: int, ctx: Context, session: ReadSession) -> AccountHealth:
    """Inbound health: state, last success, last error in plain words, messages waiting,
    and per-folder progress (messages done / total)."""
    _get(session, account_id)
    found = account_health(ctx.db, account_id)
    if found is None:
        raise AccountError(f"no account {account_id}", status=404)
    return found


@router.post(
    "/{account_id}/sync", status_code=status.HTTP_202_ACCEPTED, response_model=AccountHealth
)
def sync(account_id: int, ctx: Context, session: ReadSession) -> AccountHealth:
    """Fetch now: the workers pick the account up at their next pass (within seconds);
    follow the progress on /health."""
    _get(session, account_id)
    try:
        build_job(ctx, account_id)  # says at once why it cannot sync
    except (NotSyncable, TokenError) as exc:
        raise AccountError(str(exc), status=409) from exc
    sync_now(ctx.db, account_id)
    return health(account_id, ctx, session)


@router.post("/{account_id}/reset-counter", response_model=AccountHealth)
def reset(account_id: int, ctx: Context, session: ReadSession) -> AccountHealth:
    """Download everything again; what is already stored is recognised and not duplicated.
    Mail an initial import "from_now" left alone is fetched too, as normal mail."""
    _get(session, account_id)
    reset_counter(ctx.db, account_id)
    return health(account_id, ctx, session)
