"""Ingest rules: channel rules, case team/link/fields, message classification, installation.

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-23 10:00:00
"""

import secrets
import uuid
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import casemail.db.types

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    installation = op.create_table(
        "installation",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("instance_id", sa.String(length=36), nullable=False),
        sa.Column("token_key", sa.String(length=64), nullable=False),
        sa.Column("created_at", casemail.db.types.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_installation")),
    )
    op.bulk_insert(
        installation,
        [
            {
                "id": 1,
                "instance_id": str(uuid.uuid4()),
                "token_key": secrets.token_hex(32),
                "created_at": casemail.db.types.utcnow(),
            }
        ],
    )
    with op.batch_alter_table("channels", schema=None) as batch_op:
        batch_op.add_column(sa.Column("rules", sa.JSON(), nullable=False, server_default="{}"))
    with op.batch_alter_table("cases", schema=None) as batch_op:
        batch_op.add_column(sa.Column("team_id", sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column("linked_case_id", sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column("fields", sa.JSON(), nullable=False, server_default="{}"))
        batch_op.create_index(batch_op.f("ix_cases_team_id"), ["team_id"], unique=False)
        batch_op.create_foreign_key(
            batch_op.f("fk_cases_team_id_teams"), "teams", ["team_id"], ["id"]
        )
        batch_op.create_foreign_key(
            batch_op.f("fk_cases_linked_case_id_cases"), "cases", ["linked_case_id"], ["id"]
        )
    with op.batch_alter_table("messages", schema=None) as batch_op:
        batch_op.add_column(sa.Column("classification", sa.String(length=20), nullable=True))
        batch_op.add_column(sa.Column("sender_key", sa.String(length=320), nullable=True))
        batch_op.add_column(sa.Column("reports_on_outbox_id", sa.Integer(), nullable=True))
        batch_op.create_index(
            "ix_messages_sender_key_created", ["sender_key", "created_at"], unique=False
        )
        batch_op.create_foreign_key(
            batch_op.f("fk_messages_reports_on_outbox_id_outbox"),
            "outbox",
            ["reports_on_outbox_id"],
            ["id"],
        )
    with op.batch_alter_table("inbound", schema=None) as batch_op:
        batch_op.add_column(sa.Column("rule_hits", sa.JSON(), nullable=False, server_default="[]"))
    with op.batch_alter_table("outbox", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("kind", sa.String(length=20), nullable=False, server_default="agent")
        )
        batch_op.add_column(sa.Column("subject", sa.Text(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("outbox", schema=None) as batch_op:
        batch_op.drop_column("subject")
        batch_op.drop_column("kind")
    with op.batch_alter_table("inbound", schema=None) as batch_op:
        batch_op.drop_column("rule_hits")
    with op.batch_alter_table("messages", schema=None) as batch_op:
        batch_op.drop_constraint(
            batch_op.f("fk_messages_reports_on_outbox_id_outbox"), type_="foreignkey"
        )
        batch_op.drop_index("ix_messages_sender_key_created")
        batch_op.drop_column("reports_on_outbox_id")
        batch_op.drop_column("sender_key")
        batch_op.drop_column("classification")
    with op.batch_alter_table("cases", schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f("fk_cases_linked_case_id_cases"), type_="foreignkey")
        batch_op.drop_constraint(batch_op.f("fk_cases_team_id_teams"), type_="foreignkey")
        batch_op.drop_index(batch_op.f("ix_cases_team_id"))
        batch_op.drop_column("fields")
        batch_op.drop_column("linked_case_id")
        batch_op.drop_column("team_id")
    with op.batch_alter_table("channels", schema=None) as batch_op:
        batch_op.drop_column("rules")
    op.drop_table("installation")
