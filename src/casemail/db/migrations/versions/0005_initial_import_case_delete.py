"""Initial import modes (folder mark, POP3 item marks) and soft-deleted cases.

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-24 10:05:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import casemail.db.types

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("mailbox_folders", schema=None) as batch_op:
        batch_op.add_column(sa.Column("import_until_uid", sa.BigInteger(), nullable=True))
    # Folders synced before this revision were imported in full already: their first sync
    # is behind them, so a later initial_import setting must not skip or archive anything.
    op.execute("UPDATE mailbox_folders SET import_until_uid = 0")

    with op.batch_alter_table("mailbox_items", schema=None) as batch_op:
        batch_op.alter_column("inbound_id", existing_type=sa.Integer(), nullable=True)
        batch_op.add_column(sa.Column("import_as", sa.String(length=10), nullable=True))

    with op.batch_alter_table("cases", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("deleted_at", casemail.db.types.UTCDateTime(timezone=True), nullable=True)
        )


def downgrade() -> None:
    with op.batch_alter_table("cases", schema=None) as batch_op:
        batch_op.drop_column("deleted_at")

    # Rows of messages never stored cannot live under NOT NULL; forgetting them only means
    # those messages are fetched (as normal mail) by the next sync.
    op.execute("DELETE FROM mailbox_items WHERE inbound_id IS NULL")
    with op.batch_alter_table("mailbox_items", schema=None) as batch_op:
        batch_op.drop_column("import_as")
        batch_op.alter_column("inbound_id", existing_type=sa.Integer(), nullable=False)

    with op.batch_alter_table("mailbox_folders", schema=None) as batch_op:
        batch_op.drop_column("import_until_uid")
