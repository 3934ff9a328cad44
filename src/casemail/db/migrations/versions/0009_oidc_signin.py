"""OpenID Connect sign-in: flows without an account yet, ID token issuer and keys, mail
servers for accounts made from a sign-in.

Revision ID: 0009
Revises: 0008
Create Date: 2026-11-23 20:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0009"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("oauth_flows", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("purpose", sa.String(length=20), nullable=False, server_default="connect")
        )
        batch_op.alter_column("account_id", existing_type=sa.Integer(), nullable=True)
    with op.batch_alter_table("oauth_clients", schema=None) as batch_op:
        batch_op.add_column(sa.Column("issuer", sa.Text(), nullable=True))
        batch_op.add_column(sa.Column("jwks_url", sa.Text(), nullable=True))
        batch_op.add_column(sa.Column("mail_settings", sa.JSON(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("oauth_clients", schema=None) as batch_op:
        batch_op.drop_column("mail_settings")
        batch_op.drop_column("jwks_url")
        batch_op.drop_column("issuer")
    # Sign-in flows have no account: they cannot survive the NOT NULL.
    op.execute("DELETE FROM oauth_flows WHERE account_id IS NULL")
    with op.batch_alter_table("oauth_flows", schema=None) as batch_op:
        batch_op.alter_column("account_id", existing_type=sa.Integer(), nullable=False)
        batch_op.drop_column("purpose")
