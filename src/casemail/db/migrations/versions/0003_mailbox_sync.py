"""Mailbox sync bookkeeping: folders, fetched items, account health, channel accounts.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-23 11:55:21.530882
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import casemail.db.types

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "mailbox_folders",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("account_id", sa.Integer(), nullable=False),
        sa.Column("folder", sa.String(length=998), nullable=False),
        sa.Column("uidvalidity", sa.BigInteger(), nullable=True),
        sa.Column("last_uid", sa.BigInteger(), nullable=False),
        sa.Column("messages_total", sa.Integer(), nullable=True),
        sa.Column("messages_done", sa.Integer(), nullable=False),
        sa.Column("last_sync_at", casemail.db.types.UTCDateTime(timezone=True), nullable=True),
        sa.Column("created_at", casemail.db.types.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["account_id"], ["accounts.id"], name=op.f("fk_mailbox_folders_account_id_accounts")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_mailbox_folders")),
        sa.UniqueConstraint(
            "account_id", "folder", name=op.f("uq_mailbox_folders_account_id_folder")
        ),
    )
    op.create_table(
        "mailbox_items",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("account_id", sa.Integer(), nullable=False),
        sa.Column("folder", sa.String(length=998), nullable=False),
        sa.Column("uidvalidity", sa.BigInteger(), nullable=True),
        sa.Column("uid", sa.BigInteger(), nullable=True),
        sa.Column("uidl", sa.String(length=100), nullable=True),
        sa.Column("inbound_id", sa.Integer(), nullable=False),
        sa.Column("fetched_at", casemail.db.types.UTCDateTime(timezone=True), nullable=False),
        sa.Column(
            "removed_from_server_at", casemail.db.types.UTCDateTime(timezone=True), nullable=True
        ),
        sa.ForeignKeyConstraint(
            ["account_id"], ["accounts.id"], name=op.f("fk_mailbox_items_account_id_accounts")
        ),
        sa.ForeignKeyConstraint(
            ["inbound_id"], ["inbound.id"], name=op.f("fk_mailbox_items_inbound_id_inbound")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_mailbox_items")),
        sa.UniqueConstraint(
            "account_id",
            "folder",
            "uidvalidity",
            "uid",
            name=op.f("uq_mailbox_items_account_id_folder_uidvalidity_uid"),
        ),
        sa.UniqueConstraint("account_id", "uidl", name=op.f("uq_mailbox_items_account_id_uidl")),
    )
    with op.batch_alter_table("mailbox_items", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_mailbox_items_inbound_id"), ["inbound_id"], unique=False
        )

    with op.batch_alter_table("accounts", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("sync_state", sa.String(length=20), nullable=False, server_default="idle")
        )
        batch_op.add_column(
            sa.Column(
                "last_sync_ok_at", casemail.db.types.UTCDateTime(timezone=True), nullable=True
            )
        )
        batch_op.add_column(sa.Column("last_sync_error", sa.Text(), nullable=True))
        batch_op.add_column(
            sa.Column(
                "last_sync_error_at", casemail.db.types.UTCDateTime(timezone=True), nullable=True
            )
        )
        batch_op.add_column(
            sa.Column("sync_failures", sa.Integer(), nullable=False, server_default="0")
        )
        batch_op.add_column(
            sa.Column("next_sync_at", casemail.db.types.UTCDateTime(timezone=True), nullable=True)
        )

    with op.batch_alter_table("channels", schema=None) as batch_op:
        batch_op.add_column(sa.Column("account_id", sa.Integer(), nullable=True))
        batch_op.create_index(batch_op.f("ix_channels_account_id"), ["account_id"], unique=False)
        batch_op.create_foreign_key(
            batch_op.f("fk_channels_account_id_accounts"), "accounts", ["account_id"], ["id"]
        )


def downgrade() -> None:
    with op.batch_alter_table("channels", schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f("fk_channels_account_id_accounts"), type_="foreignkey")
        batch_op.drop_index(batch_op.f("ix_channels_account_id"))
        batch_op.drop_column("account_id")

    with op.batch_alter_table("accounts", schema=None) as batch_op:
        batch_op.drop_column("next_sync_at")
        batch_op.drop_column("sync_failures")
        batch_op.drop_column("last_sync_error_at")
        batch_op.drop_column("last_sync_error")
        batch_op.drop_column("last_sync_ok_at")
        batch_op.drop_column("sync_state")

    with op.batch_alter_table("mailbox_items", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_mailbox_items_inbound_id"))

    op.drop_table("mailbox_items")
    op.drop_table("mailbox_folders")
