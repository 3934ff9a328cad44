"""Accounts grow their full model; users and teams for personal and team accounts.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-23 11:09:49.866693
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import casemail.db.types

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "teams",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("company_id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("created_at", casemail.db.types.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["company_id"], ["companies.id"], name=op.f("fk_teams_company_id_companies")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_teams")),
        sa.UniqueConstraint("company_id", "name", name=op.f("uq_teams_company_id_name")),
    )
    op.create_table(
        "users",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("company_id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("email", sa.String(length=320), nullable=False),
        sa.Column("role", sa.String(length=20), nullable=False),
        sa.Column("active", sa.Boolean(), nullable=False),
        sa.Column("created_at", casemail.db.types.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["company_id"], ["companies.id"], name=op.f("fk_users_company_id_companies")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_users")),
        sa.UniqueConstraint("email", name=op.f("uq_users_email")),
    )
    op.create_table(
        "team_members",
        sa.Column("team_id", sa.Integer(), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["team_id"], ["teams.id"], name=op.f("fk_team_members_team_id_teams")
        ),
        sa.ForeignKeyConstraint(
            ["user_id"], ["users.id"], name=op.f("fk_team_members_user_id_users")
        ),
        sa.PrimaryKeyConstraint("team_id", "user_id", name=op.f("pk_team_members")),
    )
    with op.batch_alter_table("team_members", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_team_members_user_id"), ["user_id"], unique=False)

    with op.batch_alter_table("accounts", schema=None) as batch_op:
        batch_op.add_column(sa.Column("owner_user_id", sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column("owner_team_id", sa.Integer(), nullable=True))
        batch_op.add_column(
            sa.Column("is_default", sa.Boolean(), nullable=False, server_default=sa.false())
        )
        batch_op.add_column(
            sa.Column("auth_type", sa.String(length=20), nullable=False, server_default="password")
        )
        batch_op.add_column(sa.Column("oauth_provider", sa.String(length=40), nullable=True))
        batch_op.add_column(sa.Column("oauth_token_ref", sa.String(length=200), nullable=True))
        batch_op.add_column(
            sa.Column(
                "incoming_tested_at", casemail.db.types.UTCDateTime(timezone=True), nullable=True
            )
        )
        batch_op.add_column(sa.Column("incoming_test_ok", sa.Boolean(), nullable=True))
        batch_op.add_column(sa.Column("incoming_test_message", sa.Text(), nullable=True))
        batch_op.add_column(
            sa.Column(
                "outgoing_tested_at", casemail.db.types.UTCDateTime(timezone=True), nullable=True
            )
        )
        batch_op.add_column(sa.Column("outgoing_test_ok", sa.Boolean(), nullable=True))
        batch_op.add_column(sa.Column("outgoing_test_message", sa.Text(), nullable=True))
        batch_op.add_column(
            sa.Column("deactivated_at", casemail.db.types.UTCDateTime(timezone=True), nullable=True)
        )
        batch_op.create_index(
            batch_op.f("ix_accounts_owner_team_id"), ["owner_team_id"], unique=False
        )
        batch_op.create_index(
            batch_op.f("ix_accounts_owner_user_id"), ["owner_user_id"], unique=False
        )
        batch_op.create_index(
            "uq_accounts_company_default",
            ["company_id", "role"],
            unique=True,
            sqlite_where=sa.text("is_default AND role IN ('global', 'system')"),
            postgresql_where=sa.text("is_default AND role IN ('global', 'system')"),
        )
        batch_op.create_index(
            "uq_accounts_personal_default",
            ["owner_user_id"],
            unique=True,
            sqlite_where=sa.text("is_default AND role = 'personal'"),
            postgresql_where=sa.text("is_default AND role = 'personal'"),
        )
        batch_op.create_index(
            "uq_accounts_team_default",
            ["owner_team_id"],
            unique=True,
            sqlite_where=sa.text("is_default AND role = 'team'"),
            postgresql_where=sa.text("is_default AND role = 'team'"),
        )
        batch_op.create_foreign_key(
            batch_op.f("fk_accounts_owner_user_id_users"), "users", ["owner_user_id"], ["id"]
        )
        batch_op.create_foreign_key(
            batch_op.f("fk_accounts_owner_team_id_teams"), "teams", ["owner_team_id"], ["id"]
        )


def downgrade() -> None:
    with op.batch_alter_table("accounts", schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f("fk_accounts_owner_team_id_teams"), type_="foreignkey")
        batch_op.drop_constraint(batch_op.f("fk_accounts_owner_user_id_users"), type_="foreignkey")
        batch_op.drop_index(
            "uq_accounts_team_default",
            sqlite_where=sa.text("is_default AND role = 'team'"),
            postgresql_where=sa.text("is_default AND role = 'team'"),
        )
        batch_op.drop_index(
            "uq_accounts_personal_default",
            sqlite_where=sa.text("is_default AND role = 'personal'"),
            postgresql_where=sa.text("is_default AND role = 'personal'"),
        )
        batch_op.drop_index(
            "uq_accounts_company_default",
            sqlite_where=sa.text("is_default AND role IN ('global', 'system')"),
            postgresql_where=sa.text("is_default AND role IN ('global', 'system')"),
        )
        batch_op.drop_index(batch_op.f("ix_accounts_owner_user_id"))
        batch_op.drop_index(batch_op.f("ix_accounts_owner_team_id"))
        batch_op.drop_column("deactivated_at")
        batch_op.drop_column("outgoing_test_message")
        batch_op.drop_column("outgoing_test_ok")
        batch_op.drop_column("outgoing_tested_at")
        batch_op.drop_column("incoming_test_message")
        batch_op.drop_column("incoming_test_ok")
        batch_op.drop_column("incoming_tested_at")
        batch_op.drop_column("oauth_token_ref")
        batch_op.drop_column("oauth_provider")
        batch_op.drop_column("auth_type")
        batch_op.drop_column("is_default")
        batch_op.drop_column("owner_team_id")
        batch_op.drop_column("owner_user_id")

    with op.batch_alter_table("team_members", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_team_members_user_id"))

    op.drop_table("team_members")
    op.drop_table("users")
    op.drop_table("teams")
