"""casemail keys generate|rotate: the keys that encrypt account secrets at rest."""

from __future__ import annotations

from typing import Annotated

import typer
from cryptography.fernet import Fernet

from casemail.accounts.secrets import SecretsError, add_new_key, drop_old_keys, load_keyring
from casemail.accounts.service import reencrypt_all
from casemail.cli.common import context, fail

app = typer.Typer(help="Keys for secrets at rest.", no_args_is_help=True)


@app.command("generate")
def generate() -> None:
    """Print a new key, for CASEMAIL_SECRET_KEY (put it first; keep the old ones after it)."""
    typer.echo(Fernet.generate_key().decode())


@app.command("rotate")
def rotate(
    keep_old: Annotated[
        bool, typer.Option(help="Keep the old keys in the key file (e.g. for backups).")
    ] = False,
    reencrypt_only: Annotated[
        bool, typer.Option(help="Do not add a key; re-encrypt with the newest one.")
    ] = False,
) -> None:
    """Add a new key, re-encrypt every secret with it, then drop the old keys."""
    ctx = context()
    try:
        keys = load_keyring(ctx.settings) if reencrypt_only else add_new_key(ctx.settings)
        with ctx.db.write() as session:
            count = reencrypt_all(session, keys)
        if not keep_old and not reencrypt_only:
            drop_old_keys(ctx.settings)
    except SecretsError as exc:
        fail(str(exc))
    typer.echo(
        f"re-encrypted the secrets of {count} account(s) with the newest key ({keys.source})"
    )
