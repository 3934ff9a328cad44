"""Outbox delivery: claims, give-up time, sent time, duplicates risk, suspension.

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-23 17:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import casemail.db.types

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_TIME = casemail.db.types.UTCDateTime(timezone=True)


def upgrade() -> None:
    with op.batch_alter_table("outbox", schema=None) as batch_op:
        batch_op.add_column(sa.Column("claimed_until", _TIME, nullable=True))
        batch_op.add_column(sa.Column("give_up_at", _TIME, nullable=True))
        batch_op.add_column(sa.Column("sent_at", _TIME, nullable=True))
        batch_op.add_column(
            sa.Column("maybe_duplicate", sa.Boolean(), nullable=False, server_default=sa.false())
        )
        batch_op.add_column(sa.Column("transmitting_since", _TIME, nullable=True))
        batch_op.add_column(sa.Column("user_id", sa.Integer(), nullable=True))
        batch_op.create_foreign_key(
            batch_op.f("fk_outbox_user_id_users"), "users", ["user_id"], ["id"]
        )
    with op.batch_alter_table("installation", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("outbox_suspended", sa.Boolean(), nullable=False, server_default=sa.false())
        )
    with op.batch_alter_table("accounts", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("sending_suspended", sa.Boolean(), nullable=False, server_default=sa.false())
        )


def downgrade() -> None:
    with op.batch_alter_table("accounts", schema=None) as batch_op:
        batch_op.drop_column("sending_suspended")
    with op.batch_alter_table("installation", schema=None) as batch_op:
        batch_op.drop_column("outbox_suspended")
    with op.batch_alter_table("outbox", schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f("fk_outbox_user_id_users"), type_="foreignkey")
        batch_op.drop_column("user_id")
        batch_op.drop_column("transmitting_since")
        batch_op.drop_column("maybe_duplicate")
        batch_op.drop_column("sent_at")
        batch_op.drop_column("give_up_at")
        batch_op.drop_column("claimed_until")
