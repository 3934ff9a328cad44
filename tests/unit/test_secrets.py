"""Secrets at rest: row binding, key files, rotation."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest
from cryptography.fernet import Fernet

from casemail.accounts.secrets import (
    KeyRing,
    SecretsError,
    add_new_key,
    drop_old_keys,
    key_file,
    load_keyring,
)
from casemail.config import Settings


def test_round_trip_is_bound_to_the_row() -> None:
    ring = KeyRing((Fernet.generate_key(),), "test")
    token = ring.encrypt(7, {"incoming_password": "hunter2"})
    assert b"hunter2" not in token
    assert ring.decrypt(7, token) == {"incoming_password": "hunter2"}
    with pytest.raises(SecretsError, match="belong to another row"):
        ring.decrypt(8, token)


def test_a_wrong_key_says_what_happened() -> None:
    token = KeyRing((Fernet.generate_key(),), "old").encrypt(1, {"p": "x"})
    other = KeyRing((Fernet.generate_key(),), "/data/secret.key")
    with pytest.raises(SecretsError, match="none of the 1 key") as error:
        other.decrypt(1, token)
    assert "/data/secret.key" in str(error.value)


def test_key_file_is_created_private_and_reused(tmp_path: Path) -> None:
    settings = Settings(home=tmp_path)
    first = load_keyring(settings)
    mode = stat.S_IMODE(key_file(settings).stat().st_mode)
    assert mode == 0o600
    assert load_keyring(settings).keys == first.keys
    assert first.keys[0].decode() not in repr(first)


def test_rotation_keeps_old_secrets_readable_then_drops_old_keys(tmp_path: Path) -> None:
    settings = Settings(home=tmp_path)
    old = load_keyring(settings)
    token = old.encrypt(3, {"p": "s3cret"})
    rotated_ring = add_new_key(settings)
    assert len(rotated_ring.keys) == 2
    assert rotated_ring.keys[1] == old.keys[0]
    assert rotated_ring.decrypt(3, token) == {"p": "s3cret"}  # old ciphertext still readable
    rotated = rotated_ring.rotate(token)
    newest_only = drop_old_keys(settings)
    assert newest_only.keys == rotated_ring.keys[:1]
    assert newest_only.decrypt(3, rotated) == {"p": "s3cret"}
    with pytest.raises(SecretsError):
        newest_only.decrypt(3, token)


def test_keys_from_the_environment(tmp_path: Path) -> None:
    keys = [Fernet.generate_key().decode() for _ in range(2)]
    ring = load_keyring(Settings(home=tmp_path, secret_key=",".join(keys)))
    assert ring.source == "environment"
    assert [k.decode() for k in ring.keys] == keys
    assert not key_file(Settings(home=tmp_path)).exists()
    with pytest.raises(SecretsError, match="CASEMAIL_SECRET_KEY"):
        add_new_key(Settings(home=tmp_path, secret_key=keys[0]))


def test_a_malformed_key_is_refused_clearly(tmp_path: Path) -> None:
    with pytest.raises(SecretsError, match="key 2 from environment is not a Fernet key"):
        load_keyring(Settings(home=tmp_path, secret_key=f"{Fernet.generate_key().decode()},abc"))
