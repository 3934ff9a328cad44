"""Store first: the raw bytes and their envelope are committed before anything else happens."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from casemail.db.blobs import put_blobs
from casemail.db.engine import Database
from casemail.db.models import ADDRESS_LEN, HEADER_LEN, InboundReceipt
from casemail.db.types import clip, utcnow
from casemail.db.upsert import insert_ignore_returning
from casemail.ingest.hashing import dedupe_key, fingerprint
from casemail.ingest.headers import message_ids
from casemail.ingest.types import Source

KEYS_PER_QUERY = 500  # values per IN (...) list


@dataclass(frozen=True)
class Receipt:
    inbound_id: int
    duplicate: bool
    raw_sha256: str | None = None  # of a receipt stored by this call: what decides it next


def sniff_message_id(raw: bytes) -> str | None:
    """The Message-ID from the header block, read without a full parse.

    Only used for the dedupe key; the parse stage reads it properly later.
    """
    return _first_message_id(fingerprint(raw)[0])


def _first_message_id(field_value: bytes | None) -> str | None:
    ids = message_ids(field_value.decode("ascii", "replace")) if field_value else []
    return ids[0][:900] if ids else None


def record_receipt(db: Database, *, channel_id: int, raw: bytes, source: Source) -> Receipt:
    """Commit the raw message; a second copy of the same message returns the first receipt."""
    with db.write() as session:
        return add_receipt(session, channel_id=channel_id, raw=raw, source=source)


def add_receipt(session: Session, *, channel_id: int, raw: bytes, source: Source) -> Receipt:
    """``record_receipt`` inside the caller's transaction (a batch commits many at once)."""
    return add_receipts(session, channel_id=channel_id, items=[(raw, source)])[0]


def add_receipts(
    session: Session,
    *,
    channel_id: int,
    items: Sequence[tuple[bytes, Source]],
    claim_for: timedelta | None = None,
) -> list[Receipt]:
    """``add_receipt`` for many messages with a few statements; results in order.

    A message already stored, or a second copy within ``items``, is a duplicate of the
    first receipt, exactly as if they had been added one by one. With ``claim_for``, the
    new receipts are stored claimed for that long (state ``processing``, attempt 1) by a
    caller that processes them right after the commit.
    """
    prints = [fingerprint(raw) for raw, _ in items]
    ids = [_first_message_id(field_value) for field_value, _ in prints]
    digests = [digest for _, digest in prints]
    keys = [dedupe_key(mid, digest) for mid, digest in zip(ids, digests, strict=True)]
    # Look for earlier receipts before storing any bytes: a redelivered copy (often with
    # one more Received line) must not leave a blob behind that nothing refers to.
    known = _existing_many(session, channel_id, keys)
    fresh: dict[str, int] = {}  # key -> index of its first copy among items
    for index, key in enumerate(keys):
        if key not in known:
            fresh.setdefault(key, index)
    order = list(fresh.values())
    shas = put_blobs(session, [items[i][0] for i in order]) if order else []
    now = utcnow()
    rows = [
        _row(channel_id, items[i][0], items[i][1], ids[i], digests[i], keys[i], sha, now)
        for i, sha in zip(order, shas, strict=True)
    ]
    if claim_for is not None:
        for row in rows:
            row.update(state="processing", attempts=1, claimed_until=now + claim_for)
    returned = insert_ignore_returning(
        session,
        InboundReceipt.__table__,  # type: ignore[arg-type]
        conflict=["channel_id", "dedupe_key"],
        rows=rows,
        returning=(InboundReceipt.dedupe_key, InboundReceipt.id),
    )
    inserted = {key: int(inbound_id) for key, inbound_id in returned}
    # Keys neither known nor inserted lost a race with a concurrent delivery (PostgreSQL).
    lost = [key for key in fresh if key not in inserted]
    known.update(_existing_many(session, channel_id, lost))
    id_of = {**known, **inserted}
    sha_of = {keys[i]: sha for i, sha in zip(order, shas, strict=True)}
    receipts: list[Receipt] = []
    for index, key in enumerate(keys):
        new = fresh.get(key) == index and key in inserted
        receipts.append(Receipt(id_of[key], not new, sha_of[key] if new else None))
    return receipts


def _row(
    channel_id: int,
    raw: bytes,
    source: Source,
    message_id: str | None,
    digest: str,
    key: str,
    raw_sha: str,
    now: datetime,
) -> dict[str, Any]:
    return {
        "channel_id": channel_id,
        "source": source.kind,
        "envelope_from": clip(source.envelope_from, ADDRESS_LEN),
        "envelope_to": list(source.envelope_to),
        "peer": clip(source.peer, 100),
        "raw_sha256": raw_sha,
        "size": len(raw),
        "message_id": clip(message_id, HEADER_LEN),
        "content_hash": digest,
        "dedupe_key": key,
        "state": "received",
        "attempts": 0,
        "received_at": now,
        "archive": source.archive,
        "claimed_until": None,
        "last_error": None,
        "processed_at": None,
    }


def _existing_many(session: Session, channel_id: int, keys: list[str]) -> dict[str, int]:
    wanted = list(dict.fromkeys(keys))
    found: dict[str, int] = {}
    for start in range(0, len(wanted), KEYS_PER_QUERY):
        query = select(InboundReceipt.dedupe_key, InboundReceipt.id).where(
            InboundReceipt.channel_id == channel_id,
            InboundReceipt.dedupe_key.in_(wanted[start : start + KEYS_PER_QUERY]),
        )
        found.update((key, int(inbound_id)) for key, inbound_id in session.execute(query))
    return found
