"""Messages from files: a single .eml, or an mbox holding many (RFC 4155)."""

from __future__ import annotations

import mailbox
from collections.abc import Iterator
from pathlib import Path


def is_mbox(path: Path) -> bool:
    with path.open("rb") as handle:
        return handle.read(5) == b"From "


def read_messages(path: Path) -> Iterator[tuple[str, bytes]]:
    """``(label, raw bytes)`` for each message in ``path``; the mbox From_ line is dropped."""
    if not is_mbox(path):
        yield str(path), path.read_bytes()
        return
    box = mailbox.mbox(path, create=False)
    try:
        for index, key in enumerate(box.keys(), start=1):
            yield f"{path}#{index}", box.get_bytes(key)
    finally:
        box.close()
