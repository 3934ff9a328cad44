"""Worker processes and their heartbeats; mailbox leases (one owner per mailbox).

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-04 15:15:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from casemail.db.types import UTCDateTime

revision: str = "0012"
down_revision: str | None = "0011"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "workers",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("host", sa.String(length=255), nullable=False),
        sa.Column("pid", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(length=20), nullable=False),
        sa.Column("concurrency", sa.Integer(), nullable=False),
        sa.Column("started_at", UTCDateTime(timezone=True), nullable=False),
        sa.Column("heartbeat_at", UTCDateTime(timezone=True), nullable=False),
        sa.Column("stopped_at", UTCDateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_workers")),
    )
    op.create_table(
        "mailbox_leases",
        sa.Column("account_id", sa.Integer(), nullable=False),
        sa.Column("worker_id", sa.String(length=36), nullable=False),
        sa.Column("fencing_token", sa.BigInteger(), nullable=False),
        sa.Column("acquired_at", UTCDateTime(timezone=True), nullable=False),
        sa.Column("expires_at", UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["account_id"], ["accounts.id"], name=op.f("fk_mailbox_leases_account_id_accounts")
        ),
        sa.PrimaryKeyConstraint("account_id", name=op.f("pk_mailbox_leases")),
    )
    op.create_index(op.f("ix_mailbox_leases_worker_id"), "mailbox_leases", ["worker_id"])


def downgrade() -> None:
    op.drop_index(op.f("ix_mailbox_leases_worker_id"), table_name="mailbox_leases")
    op.drop_table("mailbox_leases")
    op.drop_table("workers")
