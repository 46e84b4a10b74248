"""Users and the prediction audit trail; runtime rights for the application role.

Revision ID: 0001
Revises:
Create Date: 2025-01-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import context, op
from sqlalchemy.dialects import postgresql

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | None = None
depends_on: str | None = None

JSON_TYPE = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")
BIGINT_KEY = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "users",
        sa.Column("id", sa.Integer(), sa.Identity(), nullable=False),
        sa.Column("username", sa.String(64), nullable=False),
        sa.Column("role", sa.String(16), nullable=False),
        sa.Column("password_hash", sa.String(255), nullable=False),
        sa.Column("disabled", sa.Boolean(), nullable=False, server_default=sa.false()),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_users")),
        sa.UniqueConstraint("username", name=op.f("uq_users_username")),
        sa.CheckConstraint("role IN ('clinician', 'admin')", name=op.f("ck_users_role")),
    )
    op.create_table(
        "prediction_audit",
        sa.Column("id", BIGINT_KEY, sa.Identity(), nullable=False),
        sa.Column("request_id", sa.String(64), nullable=False),
        sa.Column("occurred_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("username", sa.String(64), nullable=True),
        sa.Column("client_addr", sa.String(64), nullable=True),
        sa.Column("route", sa.String(128), nullable=False),
        sa.Column("model_name", sa.String(128), nullable=True),
        sa.Column("model_version", sa.String(32), nullable=True),
        sa.Column("run_id", sa.String(64), nullable=True),
        sa.Column("signal_sha256", sa.String(64), nullable=True),
        sa.Column("n_beats", sa.Integer(), nullable=True),
        sa.Column("label_counts", JSON_TYPE, nullable=True),
        sa.Column("latency_ms", sa.Float(), nullable=False),
        sa.Column("status_code", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_prediction_audit")),
        sa.UniqueConstraint("request_id", name=op.f("uq_prediction_audit_request_id")),
    )
    op.create_index(op.f("ix_prediction_audit_occurred_at"), "prediction_audit", ["occurred_at"])
    op.create_index(
        op.f("ix_prediction_audit_username_occurred_at"),
        "prediction_audit",
        ["username", "occurred_at"],
    )
    op.create_index(
        op.f("ix_prediction_audit_model"), "prediction_audit", ["model_name", "model_version"]
    )

    app_role = context.config.attributes.get("app_role")
    if app_role and op.get_bind().dialect.name == "postgresql":
        role = op.get_bind().dialect.identifier_preparer.quote(app_role)
        # Append-only audit trail: read and insert, never update or delete.
        op.execute(f"GRANT SELECT, INSERT ON prediction_audit TO {role}")
        # Users are managed by admins through the API: no DELETE (accounts are disabled).
        op.execute(f"GRANT SELECT, INSERT, UPDATE ON users TO {role}")
        op.execute(f"GRANT SELECT ON alembic_version TO {role}")


def downgrade() -> None:
    op.drop_table("prediction_audit")
    op.drop_table("users")
