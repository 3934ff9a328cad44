"""/api/v1/attachments/{id}: an attachment's bytes, as stored (always as a download)."""

from __future__ import annotations

from urllib.parse import quote

from fastapi import APIRouter, Depends, HTTPException, Response, status
from sqlalchemy.orm import Session

from casemail.api.deps import ReadSession, require_principal
from casemail.api.schemas import ErrorBody
from casemail.cases import service as cases
from casemail.db.blobs import get_blob
from casemail.db.models import Attachment, Message

router = APIRouter(
    prefix="/api/v1/attachments",
    tags=["cases"],
    dependencies=[Depends(require_principal)],
    responses={
        401: {"model": ErrorBody, "description": "Missing or invalid API token"},
        404: {"model": ErrorBody, "description": "No such attachment"},
    },
)


def download(session: Session, attachment_id: int) -> Response:
    """The bytes with headers that keep any browser from rendering them in casemail's
    origin: an HTML or SVG attachment must never run as casemail (shared by the web app)."""
    found = session.get(Attachment, attachment_id)
    message = session.get(Message, found.message_pk) if found is not None else None
    if found is None or message is None or cases.get_case(session, message.case_id) is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"No attachment {attachment_id}")
    name = found.filename or f"attachment-{found.id}"
    return Response(
        get_blob(session, found.sha256),
        media_type="application/octet-stream",
        headers={
            "Content-Disposition": f"attachment; filename*=UTF-8''{quote(name, safe='')}",
            "X-Content-Type-Options": "nosniff",
            "Content-Security-Policy": "default-src 'none'; sandbox",
            "Cache-Control": "no-store",
        },
    )


@router.get(
    "/{attachment_id}",
    response_class=Response,
    responses={200: {"content": {"application/octet-stream": {}}}},
)
def get_attachment(attachment_id: int, session: ReadSession) -> Response:
    return download(session, attachment_id)
