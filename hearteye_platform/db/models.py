"""The platform database tables (SQLAlchemy 2.0 declarative). Migrations create them; keep in sync.

Times are stored as UTC: ``timestamptz`` in PostgreSQL, naive-UTC text in sqlite, and always
returned as timezone-aware UTC datetimes.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    CheckConstraint,
    DateTime,
    Dialect,
    Float,
    ForeignKey,
    Identity,
    Index,
    Integer,
    MetaData,
    String,
    Text,
    TypeDecorator,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

#: Constraint names fixed by convention, so migrations can refer to them on every backend.
NAMING_CONVENTION = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

ROLES = ("clinician", "admin")
USERS_TABLE = "users"
AUDIT_TABLE = "prediction_audit"
RECORDINGS_TABLE = "recordings"
ANALYSES_TABLE = "analyses"
ANALYSIS_STATUSES = ("queued", "running", "done", "failed")
REVOKED_TOKENS_TABLE = "revoked_tokens"
SIGNIN_THROTTLE_TABLE = "signin_throttle"


def utcnow() -> datetime:
    return datetime.now(UTC)


class UTCDateTime(TypeDecorator[datetime]):
    """A timezone-aware UTC datetime on every backend; naive datetimes are refused."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError(f"naive datetime {value!r}: give a timezone-aware (UTC) time")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


#: JSON on sqlite, JSONB on PostgreSQL.
JSONType: Any = JSON().with_variant(JSONB(), "postgresql")
#: 64-bit key on PostgreSQL; sqlite's INTEGER PRIMARY KEY is its rowid (already 64-bit).
BigIntKey: Any = BigInteger().with_variant(Integer(), "sqlite")


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)


class User(Base):
    """A person or client application allowed to use the API."""

    __tablename__ = USERS_TABLE
    __table_args__ = (CheckConstraint("role IN ('clinician', 'admin')", name="role"),)

    id: Mapped[int] = mapped_column(Integer, Identity(), primary_key=True)
    username: Mapped[str] = mapped_column(String(64), unique=True)
    role: Mapped[str] = mapped_column(String(16))
    password_hash: Mapped[str] = mapped_column(String(255))
    disabled: Mapped[bool] = mapped_column(Boolean, default=False)
    #: Raised by a password change or a disable: tokens issued under a lower one are refused.
    token_generation: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)


class AuditEntry(Base):
    """One prediction request, answered or refused. Append-only: the app role cannot change it."""

    __tablename__ = AUDIT_TABLE
    __table_args__ = (
        Index("ix_prediction_audit_occurred_at", "occurred_at"),
        Index("ix_prediction_audit_username_occurred_at", "username", "occurred_at"),
        Index("ix_prediction_audit_model", "model_name", "model_version"),
    )

    id: Mapped[int] = mapped_column(BigIntKey, Identity(), primary_key=True)
    request_id: Mapped[str] = mapped_column(String(64), unique=True)
    occurred_at: Mapped[datetime] = mapped_column(UTCDateTime)
    username: Mapped[str | None] = mapped_column(String(64))
    client_addr: Mapped[str | None] = mapped_column(String(64))
    route: Mapped[str] = mapped_column(String(128))
    model_name: Mapped[str | None] = mapped_column(String(128))
    model_version: Mapped[str | None] = mapped_column(String(32))
    run_id: Mapped[str | None] = mapped_column(String(64))
    signal_sha256: Mapped[str | None] = mapped_column(String(64))
    n_beats: Mapped[int | None] = mapped_column(Integer)
    label_counts: Mapped[dict[str, int] | None] = mapped_column(JSONType)
    latency_ms: Mapped[float] = mapped_column(Float)
    status_code: Mapped[int] = mapped_column(Integer)


class RecordingRow(Base):
    """An uploaded ECG recording: its raw files live in the blob store, keyed by sha256."""

    __tablename__ = RECORDINGS_TABLE
    __table_args__ = (
        Index("ix_recordings_owner_created_at", "owner", "created_at"),
        Index("ix_recordings_sha256", "sha256"),
    )

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    owner: Mapped[str] = mapped_column(String(64))
    name: Mapped[str] = mapped_column(String(255))
    format: Mapped[str] = mapped_column(String(16))
    fs: Mapped[float] = mapped_column(Float)
    n_samples: Mapped[int] = mapped_column(BigIntKey)
    leads: Mapped[list[str]] = mapped_column(JSONType)
    default_lead: Mapped[str] = mapped_column(String(64))
    n_reference_beats: Mapped[int | None] = mapped_column(Integer)
    sha256: Mapped[str] = mapped_column(String(64))
    size_bytes: Mapped[int] = mapped_column(BigIntKey)
    #: [{"name", "sha256", "size_bytes"}] in upload order
    files: Mapped[list[dict[str, Any]]] = mapped_column(JSONType)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class AnalysisRow(Base):
    """One analysis of a recording by a served model; also a row of the work queue."""

    __tablename__ = ANALYSES_TABLE
    __table_args__ = (
        CheckConstraint("status IN ('queued', 'running', 'done', 'failed')", name="status"),
        Index("ix_analyses_recording_id", "recording_id"),
        Index("ix_analyses_status_created_at", "status", "created_at"),
    )

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    recording_id: Mapped[str] = mapped_column(
        String(32), ForeignKey("recordings.id", ondelete="CASCADE")
    )
    owner: Mapped[str] = mapped_column(String(64))
    model_name: Mapped[str] = mapped_column(String(128))
    model_version: Mapped[str | None] = mapped_column(String(32))
    run_id: Mapped[str | None] = mapped_column(String(64))
    lead: Mapped[str] = mapped_column(String(64))
    status: Mapped[str] = mapped_column(String(16), default="queued")
    progress: Mapped[float] = mapped_column(Float, default=0.0, server_default="0")
    error: Mapped[str | None] = mapped_column(Text)
    attempts: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    claimed_by: Mapped[str | None] = mapped_column(String(128))
    lease_until: Mapped[datetime | None] = mapped_column(UTCDateTime)
    n_beats: Mapped[int | None] = mapped_column(Integer)
    counts: Mapped[dict[str, int] | None] = mapped_column(JSONType)
    mean_heart_rate_bpm: Mapped[float | None] = mapped_column(Float)
    reference: Mapped[dict[str, Any] | None] = mapped_column(JSONType)
    beats_key: Mapped[str | None] = mapped_column(String(128))
    audit_request_id: Mapped[str | None] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    started_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class RevokedToken(Base):
    """A signed-out session token, refused until it expires (then the row may be pruned)."""

    __tablename__ = REVOKED_TOKENS_TABLE
    __table_args__ = (Index("ix_revoked_tokens_expires_at", "expires_at"),)

    jti: Mapped[str] = mapped_column(String(64), primary_key=True)
    username: Mapped[str] = mapped_column(String(64))
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime)
    revoked_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class SignInThrottle(Base):
    """Failed sign-ins of one account (``account:NAME``) or one client (``client:ADDR``)."""

    __tablename__ = SIGNIN_THROTTLE_TABLE
    __table_args__ = (Index("ix_signin_throttle_expires_at", "expires_at"),)

    key: Mapped[str] = mapped_column(String(160), primary_key=True)
    failures: Mapped[int] = mapped_column(Integer)
    window_started_at: Mapped[datetime] = mapped_column(UTCDateTime)
    locked_until: Mapped[datetime | None] = mapped_column(UTCDateTime)
    #: When the row stops mattering (window over and lock ended): pruned after that.
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime)
