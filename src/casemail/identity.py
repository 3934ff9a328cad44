"""Who we are, as mail sees it: the installation id in our loop header, the case's subject
tag, and the signed case tokens in reply addresses and in the hidden marker of the mail we
send. Outbound writes them, ingest reads them: both import this module, neither the other.

A token is ``c<case id>x<8 hex>``: the hex is an HMAC-SHA256 of the case id under the
installation's key, so nobody can write into case 42 by guessing ``support+c42@…``. It is
lower case and alphanumeric because some mail systems lower-case local parts (RFC 5321
section 2.4 says they should not) and the marker must survive being quoted in a reply.
"""

from __future__ import annotations

import functools
import hashlib
import hmac
import re
import secrets
import uuid
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session

from casemail.db.models import Installation
from casemail.db.upsert import insert_ignore

LOOP_HEADER = "X-Casemail-Loop"
_TOKEN = r"c(\d{1,10})x([0-9a-f]{8})"  # noqa: S105 - a pattern, not a secret
_ADDRESS_TOKEN = re.compile(r"\+" + _TOKEN + r"@", re.IGNORECASE)
# The hidden marker: "[ref:c42x1a2b3c4d]" in the text part, and the same inside a hidden
# element of the HTML part. Providers that rewrite Message-IDs still quote the body.
_MARKER = re.compile(r"\[ref:" + _TOKEN + r"\]", re.IGNORECASE)


def subject_tag(prefix: str, case_id: int) -> str:
    """``[Case #42]``: the tag we put in the subject of a case's mail."""
    return f"[{prefix} #{case_id}]"


@functools.lru_cache(maxsize=64)
def subject_tag_pattern(prefix: str) -> re.Pattern[str]:
    """The tag as replies bring it back: any case and spacing of ``[Case #42]``."""
    return re.compile(r"\[\s*" + re.escape(prefix) + r"\s*#\s*(\d{1,12})\s*\]", re.IGNORECASE)


@dataclass(frozen=True)
class Identity:
    instance_id: str
    token_key: bytes

    def token(self, case_id: int) -> str:
        return f"c{case_id}x{self._mac(case_id)}"

    def reply_address(self, channel_address: str, case_id: int) -> str:
        """``support@example.com`` → ``support+c42x1a2b3c4d@example.com`` (RFC 5233)."""
        local, _, domain = channel_address.rpartition("@")
        return f"{local.split('+', 1)[0]}+{self.token(case_id)}@{domain}"

    def marker(self, case_id: int) -> str:
        return f"[ref:{self.token(case_id)}]"

    def case_in_address(self, address: str) -> int | None:
        return self._verified(_ADDRESS_TOKEN.search(address))

    def case_in_text(self, text: str | None) -> int | None:
        if not text:
            return None
        # Newest first: a reply quotes older mail below its own text.
        for found in _MARKER.finditer(text):
            case_id = self._verified(found)
            if case_id is not None:
                return case_id
        return None

    def _verified(self, found: re.Match[str] | None) -> int | None:
        if found is None:
            return None
        case_id = int(found.group(1))
        if hmac.compare_digest(found.group(2).lower(), self._mac(case_id)):
            return case_id
        return None

    def _mac(self, case_id: int) -> str:
        digest = hmac.new(self.token_key, f"case:{case_id}".encode(), hashlib.sha256)
        return digest.hexdigest()[:8]


def load_identity(session: Session) -> Identity:
    """The installation's identity, created on first use where the migration did not."""
    row = session.scalar(select(Installation).where(Installation.id == 1))
    if row is None:
        insert_ignore(
            session,
            Installation.__table__,  # type: ignore[arg-type]
            conflict=["id"],
            returning=Installation.id,
            values={"id": 1, "instance_id": str(uuid.uuid4()), "token_key": secrets.token_hex(32)},
        )
        row = session.scalars(select(Installation).where(Installation.id == 1)).one()
    return Identity(instance_id=row.instance_id, token_key=bytes.fromhex(row.token_key))
