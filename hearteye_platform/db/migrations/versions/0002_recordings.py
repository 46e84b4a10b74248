"""Uploaded ECG recordings and their analyses (the analysis work queue).

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-05
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import context, op
from sqlalchemy.dialects import postgresql

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | None = None
depends_on: str | None = None

JSON_TYPE = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")
BIGINT = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
STATUSES = "status IN ('queued', 'running', 'done', 'failed')"


def upgrade() -> None:
    op.create_table(
        "recordings",
        sa.Column("id", sa.String(32), nullable=False),
        sa.Column("owner", sa.String(64), nullable=False),
        sa.Column("name", sa.String(255), nullable=False),
        sa.Column("format", sa.String(16), nullable=False),
        sa.Column("fs", sa.Float(), nullable=False),
        sa.Column("n_samples", BIGINT, nullable=False),
        sa.Column("leads", JSON_TYPE, nullable=False),
        sa.Column("default_lead", sa.String(64), nullable=False),
        sa.Column("n_reference_beats", sa.Integer(), nullable=True),
        sa.Column("sha256", sa.String(64), nullable=False),
        sa.Column("size_bytes", BIGINT, nullable=False),
        sa.Column("files", JSON_TYPE, nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_recordings")),
    )
    op.create_index(op.f("ix_recordings_owner_created_at"), "recordings", ["owner", "created_at"])
    op.create_index(op.f("ix_recordings_sha256"), "recordings", ["sha256"])
    op.create_table(
        "analyses",
        sa.Column("id", sa.String(32), nullable=False),
        sa.Column("recording_id", sa.String(32), nullable=False),
        sa.Column("owner", sa.String(64), nullable=False),
        sa.Column("model_name", sa.String(128), nullable=False),
        sa.Column("model_version", sa.String(32), nullable=True),
        sa.Column("run_id", sa.String(64), nullable=True),
        sa.Column("lead", sa.String(64), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("progress", sa.Float(), nullable=False, server_default="0"),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("attempts", sa.Integer(), nullable=False, server_default="0"),
        sa.Column("claimed_by", sa.String(128), nullable=True),
        sa.Column("lease_until", sa.DateTime(timezone=True), nullable=True),
        sa.Column("n_beats", sa.Integer(), nullable=True),
        sa.Column("counts", JSON_TYPE, nullable=True),
        sa.Column("mean_heart_rate_bpm", sa.Float(), nullable=True),
        sa.Column("reference", JSON_TYPE, nullable=True),
        sa.Column("beats_key", sa.String(128), nullable=True),
        sa.Column("audit_request_id", sa.String(64), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_analyses")),
        sa.ForeignKeyConstraint(
            ["recording_id"],
            ["recordings.id"],
            name=op.f("fk_analyses_recording_id_recordings"),
            ondelete="CASCADE",
        ),
        sa.CheckConstraint(STATUSES, name=op.f("ck_analyses_status")),
    )
    op.create_index(op.f("ix_analyses_recording_id"), "analyses", ["recording_id"])
    op.create_index(op.f("ix_analyses_status_created_at"), "analyses", ["status", "created_at"])

    app_role = context.config.attributes.get("app_role")
    if app_role and op.get_bind().dialect.name == "postgresql":
        role = op.get_bind().dialect.identifier_preparer.quote(app_role)
        # Users own and delete their recordings; the analysis queue is updated by the workers.
        op.execute(f"GRANT SELECT, INSERT, UPDATE, DELETE ON recordings TO {role}")
        op.execute(f"GRANT SELECT, INSERT, UPDATE, DELETE ON analyses TO {role}")


def downgrade() -> None:
    op.drop_table("analyses")
    op.drop_table("recordings")
