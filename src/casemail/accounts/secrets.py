"""Secrets at rest: account passwords and tokens, encrypted with MultiFernet.

Keys come from ``CASEMAIL_SECRET_KEY`` (comma-separated, newest first) or from the key file
``<home>/secret.key`` (one key per line, newest first), created with mode 0600 on first use.
The newest key encrypts; every listed key decrypts, so a rotation never locks anything out.

Each ciphertext carries the id of the row it belongs to, and decryption checks it: a blob
copied onto another account (by a bug or by someone with database access) is refused
instead of handing one mailbox's password to another.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

from cryptography.fernet import Fernet, InvalidToken, MultiFernet

from casemail.config import Settings

KEY_FILE_NAME = "secret.key"
ACCOUNTS = "accounts"


class SecretsError(RuntimeError):
    """A secret cannot be decrypted: wrong key, damaged data or another row's secret."""


@dataclass(frozen=True)
class KeyRing:
    keys: tuple[bytes, ...]
    source: str  # "environment" or the key file path, for messages

    def __post_init__(self) -> None:
        if not self.keys:
            raise SecretsError("no secret key configured")

    def __repr__(self) -> str:
        return f"KeyRing({len(self.keys)} key(s) from {self.source})"

    @property
    def _fernet(self) -> MultiFernet:
        return MultiFernet([Fernet(k) for k in self.keys])

    def encrypt(self, row_id: int, values: dict[str, str], *, table: str = ACCOUNTS) -> bytes:
        """``table`` binds the blob to its table as well as its row: an OAuth client's
        secret copied onto the account with the same id is refused too. Account blobs
        carry no table (they predate it), which reads as ``accounts``."""
        bound: dict[str, object] = {"row": row_id, "values": values}
        if table != ACCOUNTS:
            bound["table"] = table
        return self._fernet.encrypt(json.dumps(bound, sort_keys=True).encode())

    def decrypt(self, row_id: int, token: bytes, *, table: str = ACCOUNTS) -> dict[str, str]:
        try:
            payload = json.loads(self._fernet.decrypt(token))
        except InvalidToken as exc:
            raise SecretsError(
                f"cannot decrypt the secrets of {table} row {row_id}: none of the "
                f"{len(self.keys)} key(s) from {self.source} fits (was the key replaced "
                "instead of rotated?)"
            ) from exc
        if payload.get("row") != row_id or payload.get("table", ACCOUNTS) != table:
            raise SecretsError(f"the secrets stored on {table} row {row_id} belong to another row")
        values: dict[str, str] = payload["values"]
        return values

    def rotate(self, token: bytes) -> bytes:
        """Re-encrypt with the newest key (the row binding is inside and stays)."""
        return self._fernet.rotate(token)


def _parse_keys(text: str, source: str) -> tuple[bytes, ...]:
    keys = tuple(k.strip().encode() for k in text.replace(",", "\n").splitlines() if k.strip())
    for number, key in enumerate(keys, start=1):
        try:
            Fernet(key)
        except ValueError as exc:
            raise SecretsError(
                f"key {number} from {source} is not a Fernet key (32 url-safe base64 bytes); "
                "create one with `casemail keys generate`"
            ) from exc
    return keys


def key_file(settings: Settings) -> Path:
    return settings.home / KEY_FILE_NAME


def _write_key_file(path: Path, keys: tuple[bytes, ...]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_suffix(".tmp")
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write("".join(k.decode() + "\n" for k in keys))
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(temporary, path)


def load_keyring(settings: Settings, *, create: bool = True) -> KeyRing:
    if settings.secret_key is not None:
        return KeyRing(
            _parse_keys(settings.secret_key.get_secret_value(), "environment"), "environment"
        )
    path = key_file(settings)
    if not path.exists():
        if not create:
            raise SecretsError(f"no secret key: {path} does not exist")
        _write_key_file(path, (Fernet.generate_key(),))
    return KeyRing(_parse_keys(path.read_text(), str(path)), str(path))


def add_new_key(settings: Settings) -> KeyRing:
    """Put a fresh key first in the key file; the old keys stay for decryption."""
    if settings.secret_key is not None:
        raise SecretsError(
            "the keys come from CASEMAIL_SECRET_KEY: put a new key (`casemail keys generate`) "
            "first in that variable, restart, then run `casemail keys rotate --reencrypt-only`"
        )
    ring = load_keyring(settings)
    keys = (Fernet.generate_key(), *ring.keys)
    _write_key_file(key_file(settings), keys)
    return KeyRing(keys, ring.source)


def drop_old_keys(settings: Settings) -> KeyRing:
    """Keep only the newest key in the key file (after every row was re-encrypted)."""
    ring = load_keyring(settings, create=False)
    _write_key_file(key_file(settings), ring.keys[:1])
    return KeyRing(ring.keys[:1], ring.source)
