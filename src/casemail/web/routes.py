"""The web app for agents: sign in, the case list, a case with its email history, reply,
status and assignment. Server-rendered; every form posts with the session's CSRF token."""

from __future__ import annotations

from datetime import timedelta
from typing import Annotated

from fastapi import APIRouter, Form, HTTPException, Query, Request, status
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from sqlalchemy import select

from casemail.accounts.sending import sendable_accounts
from casemail.api.attachments import download
from casemail.api.deps import Context
from casemail.auth.signin import sign_in
from casemail.cases import service as cases
from casemail.db.models import Message, OAuthClient, OutboxEntry, Team, User
from casemail.outbound import service as outbox
from casemail.outbound.service import CaseMail, NotFound, OutboundError
from casemail.web.auth import (
    CompanySession,
    CurrentVisitor,
    Signer,
    check_form,
    check_origin,
)
from casemail.web.pages import page, see
from casemail.web.quoted import split_quoted
from casemail.web.session import (
    SESSION_COOKIE,
    SESSION_SECONDS,
    SIGNIN_COOKIE,
    SIGNIN_SECONDS,
    same_token,
)

router = APIRouter(prefix="/ui", include_in_schema=False)
CsrfField = Annotated[str | None, Form(alias="csrf")]


def _secure(request: Request) -> bool:
    return request.url.scheme == "https"


@router.get("")
def home() -> RedirectResponse:
    return see("/ui/cases")


@router.get("/signin")
def signin_form(
    request: Request, signer: Signer, context: Context, next: str = "/ui/cases"
) -> HTMLResponse:
    return _signin_page(request, signer, context, next, None, status.HTTP_200_OK)


def _signin_page(
    request: Request,
    signer: Signer,
    context: Context,
    next_path: str,
    error: str | None,
    code: int,
) -> HTMLResponse:
    cookie, token = signer.new_signin_token()
    with context.db.read() as session:
        # OpenID Connect apps (those with an issuer): "Sign in with …" buttons.
        providers = [
            (client.id, client.name)
            for client in session.scalars(
                select(OAuthClient).where(OAuthClient.issuer.is_not(None)).order_by(OAuthClient.id)
            )
        ]
    values = {"csrf": token, "next": _local(next_path), "error": error, "providers": providers}
    response = page(request, "signin.html", values, status_code=code)
    response.set_cookie(
        SIGNIN_COOKIE,
        cookie,
        max_age=SIGNIN_SECONDS,
        httponly=True,
        samesite="strict",
        secure=_secure(request),
        path="/ui/signin",
    )
    return response


def _local(path: str) -> str:
    """Only a path of this app: an open redirect would make the sign-in page a phishing aid."""
    if path.startswith("/ui/") and not path.startswith("//") and "\\" not in path:
        return path
    return "/ui/cases"


@router.post("/signin")
def signin(
    request: Request,
    context: Context,
    signer: Signer,
    email: Annotated[str, Form(max_length=320)],
    password: Annotated[str, Form(max_length=1024)],
    csrf: CsrfField = None,
    next: Annotated[str, Form()] = "/ui/cases",
) -> Response:
    check_origin(request)
    expected = signer.read_signin_token(request.cookies.get(SIGNIN_COOKIE))
    if expected is None or not same_token(expected, csrf):
        error = "The sign-in form expired: please sign in again."
        return _signin_page(request, signer, context, next, error, status.HTTP_403_FORBIDDEN)
    with context.db.write() as session:
        result = sign_in(session, email, password)
        user = result.user
        made = signer.new_session(user.id, user.password_hash) if user is not None else None
    if made is None:
        refused = status.HTTP_401_UNAUTHORIZED
        return _signin_page(request, signer, context, next, result.refusal, refused)
    response = see(_local(next))
    start_session(response, request, made[0])
    response.delete_cookie(SIGNIN_COOKIE, path="/ui/signin")
    return response


def start_session(response: Response, request: Request, cookie: str) -> None:
    """The session cookie: HttpOnly (no script reads it), SameSite=Lax (not sent with
    cross-site POSTs), Secure behind HTTPS."""
    response.set_cookie(
        SESSION_COOKIE,
        cookie,
        max_age=SESSION_SECONDS,
        httponly=True,
        samesite="lax",
        secure=_secure(request),
        path="/",
    )


@router.post("/signout")
def signout(request: Request, visitor: CurrentVisitor, csrf: CsrfField = None) -> Response:
    check_form(request, visitor, csrf)
    response = see("/ui/signin")
    response.delete_cookie(SESSION_COOKIE, path="/")
    return response


@router.get("/cases")
def case_list(
    request: Request,
    visitor: CurrentVisitor,
    session: CompanySession,
    q: Annotated[str | None, Query(max_length=200)] = None,
    status_: Annotated[str | None, Query(alias="status")] = None,
    team: Annotated[str | None, Query()] = None,
    assignee: Annotated[str | None, Query(description="me, none or a user id")] = None,
) -> HTMLResponse:
    where = cases.CaseFilter(
        status=status_ if status_ in cases.CASE_STATUSES else None,
        team_id=int(team) if team and team.isdigit() else None,
        assignee_user_id=_assignee(assignee, visitor.principal.user_id),
        unassigned=assignee == "none",
        search=q,
    )
    rows = cases.list_cases(session, limit=200, where=where)
    users = {u.id: u for u in session.scalars(select(User))}
    teams = list(session.scalars(select(Team).order_by(Team.name)))
    chosen = {"q": q or "", "status": status_ or "", "team": team or "", "assignee": assignee or ""}
    values = {
        "visitor": visitor.principal,
        "csrf": visitor.session.csrf,
        "cases": rows,
        "users": users,
        "teams": teams,
        "statuses": cases.CASE_STATUSES,
        "chosen": chosen,
    }
    partial = request.headers.get("HX-Request") == "true"
    return page(request, "case_rows.html" if partial else "cases.html", values)


def _assignee(value: str | None, me: int) -> int | None:
    if value == "me":
        return me
    return int(value) if value and value.isdigit() else None


@router.get("/cases/{case_id}")
def case_view(
    request: Request,
    case_id: int,
    visitor: CurrentVisitor,
    session: CompanySession,
    sent: int | None = None,
) -> HTMLResponse:
    case = cases.get_case(session, case_id)
    if case is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"Case {case_id} not found")
    history = cases.case_messages(session, case_id)
    ids = [m.message_id for m in history if m.direction == "outbound" and m.message_id]
    delivery = {
        e.message_id: e
        for e in session.scalars(select(OutboxEntry).where(OutboxEntry.message_id.in_(ids)))
    }
    last_inbound = next((m for m in reversed(history) if m.direction == "inbound"), None)
    values = {
        "visitor": visitor.principal,
        "csrf": visitor.session.csrf,
        "case": case,
        "history": [(m, *split_quoted(m.text_body or "")) for m in history],
        "delivery": delivery,
        "accounts": sendable_accounts(session, visitor.principal.user_id),
        "users": list(
            session.scalars(select(User).where(User.active.is_(True)).order_by(User.name))
        ),
        "teams": list(session.scalars(select(Team).order_by(Team.name))),
        "statuses": cases.CASE_STATUSES,
        "reply_to": last_inbound,
        "notice": f"Your reply is queued (outbox #{sent})." if sent else None,
    }
    return page(request, "case.html", values)


@router.get("/messages/{message_pk}/html")
def message_html(
    message_pk: int,
    visitor: CurrentVisitor,
    session: CompanySession,
    images: bool = False,
) -> Response:
    """The sanitised HTML body alone, for a sandboxed frame: no script can run (sandbox
    without allow-scripts, and script-src 'none'), and remote images load only when the
    viewer asks (``images=1``), so a sender cannot tell when the mail was read."""
    message = session.get(Message, message_pk)
    if message is None or message.html_body is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, "No such message body")
    if cases.get_case(session, message.case_id) is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, "No such message body")
    remote = " https: http:" if images else ""
    policy = (
        f"default-src 'none'; img-src data:{remote}; style-src 'unsafe-inline'; "
        "frame-ancestors 'self'; sandbox"
    )
    document = (
        "<!doctype html><html><head><meta charset=utf-8>"
        '<base target="_blank"></head><body>' + message.html_body + "</body></html>"
    )
    return HTMLResponse(
        document,
        headers={
            "Content-Security-Policy": policy,
            "X-Content-Type-Options": "nosniff",
            "Referrer-Policy": "no-referrer",
            "Cache-Control": "no-store",
        },
    )


@router.get("/attachments/{attachment_id}")
def attachment(attachment_id: int, visitor: CurrentVisitor, session: CompanySession) -> Response:
    """Always as a download, never rendered in our origin (see api.attachments)."""
    return download(session, attachment_id)


@router.post("/cases/{case_id}/reply")
def reply(
    request: Request,
    case_id: int,
    visitor: CurrentVisitor,
    session: CompanySession,
    context: Context,
    to: Annotated[str, Form(max_length=2000)],
    text: Annotated[str, Form(max_length=1_000_000)],
    cc: Annotated[str, Form(max_length=2000)] = "",
    subject: Annotated[str, Form(max_length=998)] = "",
    account_id: Annotated[int | None, Form()] = None,
    reply_to_message: Annotated[int | None, Form()] = None,
    csrf: CsrfField = None,
) -> Response:
    check_form(request, visitor, csrf)
    mail = CaseMail(
        to=_addresses(to),
        cc=_addresses(cc),
        subject=subject.strip() or None,
        text=text,
        account_id=account_id,
        user_id=visitor.principal.user_id,
        reply_to_message=reply_to_message,
    )
    give_up = timedelta(hours=context.settings.outbox_give_up_hours)
    try:
        entry = outbox.send_from_case(session, case_id, mail, give_up_after=give_up)
    except NotFound as exc:
        raise HTTPException(status.HTTP_404_NOT_FOUND, str(exc)) from exc
    except OutboundError as exc:
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, str(exc)) from exc
    return see(f"/ui/cases/{case_id}?sent={entry.id}")


def _addresses(field: str) -> tuple[str, ...]:
    return tuple(part.strip() for part in field.replace(";", ",").split(",") if part.strip())


@router.post("/cases/{case_id}/update")
def update(
    request: Request,
    case_id: int,
    visitor: CurrentVisitor,
    session: CompanySession,
    status_: Annotated[str, Form(alias="status")],
    assignee: Annotated[str, Form()] = "",
    team: Annotated[str, Form()] = "",
    csrf: CsrfField = None,
) -> Response:
    check_form(request, visitor, csrf)
    case = cases.get_case(session, case_id)
    if case is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"Case {case_id} not found")
    try:
        cases.update_case(
            session,
            case,
            status=status_,
            assignee_user_id=int(assignee) if assignee.isdigit() else None,
            team_id=int(team) if team.isdigit() else None,
        )
    except cases.CaseUpdateError as exc:
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, str(exc)) from exc
    return see(f"/ui/cases/{case_id}")
