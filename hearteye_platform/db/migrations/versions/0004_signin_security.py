"""Sign-in security: each user's token generation, and the shared sign-in throttle.

``users.token_generation`` goes up when a password changes or an account is disabled; a token
carries the generation it was issued under and is refused once it is behind. ``signin_throttle``
counts failed sign-ins per account and per client address, for every worker and replica at once.

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-05
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import context, op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | None = None
depends_on: str | None = None


def upgrade() -> None:
    op.add_column(
        "users",
        sa.Column("token_generation", sa.Integer(), nullable=False, server_default="0"),
    )
    op.create_table(
        "signin_throttle",
        sa.Column("key", sa.String(160), nullable=False),
        sa.Column("failures", sa.Integer(), nullable=False),
        sa.Column("window_started_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("locked_until", sa.DateTime(timezone=True), nullable=True),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("key", name=op.f("pk_signin_throttle")),
    )
    op.create_index(op.f("ix_signin_throttle_expires_at"), "signin_throttle", ["expires_at"])
    app_role = context.config.attributes.get("app_role")
    if app_role and op.get_bind().dialect.name == "postgresql":
        role = op.get_bind().dialect.identifier_preparer.quote(app_role)
        # Failures are counted and cleared by the API; expired rows pruned by the next failure.
        op.execute(f"GRANT SELECT, INSERT, UPDATE, DELETE ON signin_throttle TO {role}")


def downgrade() -> None:
    op.drop_index(op.f("ix_signin_throttle_expires_at"), table_name="signin_throttle")
    op.drop_table("signin_throttle")
    with op.batch_alter_table("users") as batch:
        batch.drop_column("token_generation")
