"""OAuth2: app registrations, flows in progress, token health on accounts.

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-23 19:30:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import casemail.db.types

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_TIME = casemail.db.types.UTCDateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "oauth_clients",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("company_id", sa.Integer(), nullable=True),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("provider", sa.String(length=40), nullable=False),
        sa.Column("client_id", sa.String(length=400), nullable=False),
        sa.Column("tenant", sa.String(length=200), nullable=True),
        sa.Column("authorize_url", sa.Text(), nullable=False),
        sa.Column("token_url", sa.Text(), nullable=False),
        sa.Column("scopes", sa.JSON(), nullable=False),
        sa.Column("redirect_uri", sa.Text(), nullable=False),
        sa.Column("secrets", sa.LargeBinary(), nullable=True),
        sa.Column("created_at", _TIME, nullable=False),
        sa.ForeignKeyConstraint(
            ["company_id"], ["companies.id"], name=op.f("fk_oauth_clients_company_id_companies")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_oauth_clients")),
        sa.UniqueConstraint("name", name=op.f("uq_oauth_clients_name")),
    )
    op.create_table(
        "oauth_flows",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("state_hash", sa.String(length=64), nullable=False),
        sa.Column("account_id", sa.Integer(), nullable=False),
        sa.Column("client_id", sa.Integer(), nullable=False),
        sa.Column("redirect_uri", sa.Text(), nullable=False),
        sa.Column("secrets", sa.LargeBinary(), nullable=True),
        sa.Column("created_at", _TIME, nullable=False),
        sa.Column("expires_at", _TIME, nullable=False),
        sa.Column("used_at", _TIME, nullable=True),
        sa.ForeignKeyConstraint(
            ["account_id"], ["accounts.id"], name=op.f("fk_oauth_flows_account_id_accounts")
        ),
        sa.ForeignKeyConstraint(
            ["client_id"], ["oauth_clients.id"], name=op.f("fk_oauth_flows_client_id_oauth_clients")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_oauth_flows")),
        sa.UniqueConstraint("state_hash", name=op.f("uq_oauth_flows_state_hash")),
    )
    op.create_index(op.f("ix_oauth_flows_account_id"), "oauth_flows", ["account_id"])
    with op.batch_alter_table("accounts", schema=None) as batch_op:
        batch_op.add_column(sa.Column("oauth_client_id", sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column("oauth_state", sa.String(length=30), nullable=True))
        batch_op.add_column(sa.Column("oauth_error", sa.Text(), nullable=True))
        batch_op.add_column(sa.Column("oauth_expires_at", _TIME, nullable=True))
        batch_op.add_column(sa.Column("oauth_refreshed_at", _TIME, nullable=True))
        batch_op.create_foreign_key(
            batch_op.f("fk_accounts_oauth_client_id_oauth_clients"),
            "oauth_clients",
            ["oauth_client_id"],
            ["id"],
        )


def downgrade() -> None:
    with op.batch_alter_table("accounts", schema=None) as batch_op:
        batch_op.drop_constraint(
            batch_op.f("fk_accounts_oauth_client_id_oauth_clients"), type_="foreignkey"
        )
        batch_op.drop_column("oauth_refreshed_at")
        batch_op.drop_column("oauth_expires_at")
        batch_op.drop_column("oauth_error")
        batch_op.drop_column("oauth_state")
        batch_op.drop_column("oauth_client_id")
    op.drop_index(op.f("ix_oauth_flows_account_id"), table_name="oauth_flows")
    op.drop_table("oauth_flows")
    op.drop_table("oauth_clients")
