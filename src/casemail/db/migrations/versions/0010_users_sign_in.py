"""Users sign in: password hashes and lock-out after failed attempts; every API token
belongs to a user (and so to a company); cases get an assignee; a quarantined message can
be assigned to a case by an admin.

Tokens made before this revision had no owner. They are given to the first admin of the
default company, created as "Administrator" when there is none, so that they keep working
with the rights they had (everything the default company owns).

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-04 14:30:00
"""

from collections.abc import Sequence
from datetime import UTC, datetime

import sqlalchemy as sa
from alembic import op

from casemail.db.types import UTCDateTime

revision: str = "0010"
down_revision: str | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

FALLBACK_ADMIN = "admin@casemail.localhost"


def upgrade() -> None:
    with op.batch_alter_table("users", schema=None) as batch_op:
        batch_op.add_column(sa.Column("password_hash", sa.String(length=255), nullable=True))
        batch_op.add_column(sa.Column("last_sign_in_at", UTCDateTime(timezone=True), nullable=True))
        batch_op.add_column(
            sa.Column("failed_sign_ins", sa.Integer(), nullable=False, server_default="0")
        )
        batch_op.add_column(sa.Column("locked_until", UTCDateTime(timezone=True), nullable=True))
    with op.batch_alter_table("cases", schema=None) as batch_op:
        batch_op.add_column(sa.Column("assignee_user_id", sa.Integer(), nullable=True))
        batch_op.create_foreign_key(
            op.f("fk_cases_assignee_user_id_users"), "users", ["assignee_user_id"], ["id"]
        )
        batch_op.create_index(op.f("ix_cases_assignee_user_id"), ["assignee_user_id"])
    with op.batch_alter_table("api_tokens", schema=None) as batch_op:
        batch_op.add_column(sa.Column("user_id", sa.Integer(), nullable=True))
        batch_op.create_foreign_key(
            op.f("fk_api_tokens_user_id_users"), "users", ["user_id"], ["id"]
        )
        batch_op.create_index(op.f("ix_api_tokens_user_id"), ["user_id"])
    with op.batch_alter_table("inbound", schema=None) as batch_op:
        batch_op.add_column(sa.Column("assign_case_id", sa.Integer(), nullable=True))
        batch_op.create_foreign_key(
            op.f("fk_inbound_assign_case_id_cases"), "cases", ["assign_case_id"], ["id"]
        )
    _give_tokens_an_owner()


def _give_tokens_an_owner() -> None:
    bind = op.get_bind()
    orphans = bind.execute(sa.text("SELECT count(*) FROM api_tokens WHERE user_id IS NULL"))
    if not orphans.scalar():
        return
    admin = bind.execute(
        sa.text(
            "SELECT id FROM users WHERE company_id = 1 AND role = 'admin' AND active "
            "ORDER BY id LIMIT 1"
        )
    ).scalar()
    if admin is None:
        bind.execute(
            sa.text(
                "INSERT INTO users (company_id, name, email, role, active, created_at) "
                "VALUES (1, 'Administrator', :email, 'admin', :active, :now)"
            ).bindparams(sa.bindparam("now", type_=UTCDateTime())),
            {"email": FALLBACK_ADMIN, "active": True, "now": datetime.now(UTC)},
        )
        admin = bind.execute(
            sa.text("SELECT id FROM users WHERE email = :email"), {"email": FALLBACK_ADMIN}
        ).scalar()
    bind.execute(
        sa.text("UPDATE api_tokens SET user_id = :admin WHERE user_id IS NULL"), {"admin": admin}
    )


def downgrade() -> None:
    with op.batch_alter_table("inbound", schema=None) as batch_op:
        batch_op.drop_constraint(op.f("fk_inbound_assign_case_id_cases"), type_="foreignkey")
        batch_op.drop_column("assign_case_id")
    with op.batch_alter_table("api_tokens", schema=None) as batch_op:
        batch_op.drop_index(op.f("ix_api_tokens_user_id"))
        batch_op.drop_constraint(op.f("fk_api_tokens_user_id_users"), type_="foreignkey")
        batch_op.drop_column("user_id")
    with op.batch_alter_table("cases", schema=None) as batch_op:
        batch_op.drop_index(op.f("ix_cases_assignee_user_id"))
        batch_op.drop_constraint(op.f("fk_cases_assignee_user_id_users"), type_="foreignkey")
        batch_op.drop_column("assignee_user_id")
    with op.batch_alter_table("users", schema=None) as batch_op:
        batch_op.drop_column("locked_until")
        batch_op.drop_column("failed_sign_ins")
        batch_op.drop_column("last_sign_in_at")
        batch_op.drop_column("password_hash")
