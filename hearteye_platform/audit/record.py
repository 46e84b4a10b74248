"""The audit record of one prediction request, and the audit-trail query."""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, field_validator
from sqlalchemy import select
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session

from hearteye.errors import HeartEyeError
from hearteye_platform.db.engine import is_unavailable
from hearteye_platform.db.errors import DatabaseUnavailableError
from hearteye_platform.db.models import AuditEntry

MAX_QUERY_LIMIT = 10_000


class AuditQueryError(HeartEyeError):
    """An audit query parameter is out of range (the API answers 422)."""


class AuditRecord(BaseModel):
    """Who asked what, when, and which model version answered — answered or refused."""

    model_config = ConfigDict(frozen=True, extra="forbid", protected_namespaces=())

    request_id: str = Field(min_length=1, max_length=64, description="Server-generated request id.")
    occurred_at: datetime = Field(description="When the request arrived (UTC).")
    username: str | None = Field(default=None, max_length=64, description="Token subject.")
    client_addr: str | None = Field(default=None, max_length=64, description="Client IP.")
    route: str = Field(min_length=1, max_length=128, description="e.g. /api/v1/predict")
    model_name: str | None = Field(default=None, max_length=128)
    model_version: str | None = Field(default=None, max_length=32)
    run_id: str | None = Field(default=None, max_length=64)
    signal_sha256: str | None = Field(
        default=None, pattern=r"^[0-9a-f]{64}$", description="See `signal_sha256()`."
    )
    n_beats: int | None = Field(default=None, ge=0)
    label_counts: dict[str, int] | None = Field(default=None, description="Beats per label.")
    latency_ms: float = Field(ge=0, allow_inf_nan=False)
    status_code: int = Field(ge=100, le=599)

    @field_validator("occurred_at")
    @classmethod
    def _utc(cls, value: datetime) -> datetime:
        if value.tzinfo is None:
            raise ValueError("occurred_at must be timezone-aware (UTC)")
        return value.astimezone(UTC)

    @field_validator("username")
    @classmethod
    def _lower(cls, value: str | None) -> str | None:
        return value.lower() if value is not None else None

    @field_validator("label_counts")
    @classmethod
    def _counts(cls, value: dict[str, int] | None) -> dict[str, int] | None:
        if value is not None and any(count < 0 for count in value.values()):
            raise ValueError("label counts must be non-negative")
        return value

    def to_row(self) -> dict[str, Any]:
        """Column values for ``prediction_audit``."""
        return self.model_dump()

    @classmethod
    def from_entry(cls, entry: AuditEntry | Any) -> AuditRecord:
        """From an ORM entry or a Core row of ``prediction_audit``."""
        return cls.model_validate({name: getattr(entry, name) for name in cls.model_fields})


def new_request_id() -> str:
    """A fresh request id (32 hex characters). Generate it server-side, never from the client."""
    return uuid.uuid4().hex


def signal_sha256(signal: Sequence[float] | np.ndarray) -> str:
    """sha256 of the input signal as little-endian float64 samples, as received (before any
    filtering): the same strip always gives the same digest, whatever its JSON spelling."""
    samples = np.ascontiguousarray(np.asarray(signal, dtype="<f8"))
    return hashlib.sha256(samples.tobytes()).hexdigest()


def query_audit(
    session: Session,
    *,
    since: datetime | None = None,
    until: datetime | None = None,
    username: str | None = None,
    model_name: str | None = None,
    model_version: str | None = None,
    limit: int = 100,
) -> list[AuditRecord]:
    """Audit records, newest first: ``since`` <= occurred_at < ``until``, filtered by user,
    model name and version (exact matches), at most ``limit`` (1-10000)."""
    if not 1 <= limit <= MAX_QUERY_LIMIT:
        raise AuditQueryError(f"limit {limit}: must be between 1 and {MAX_QUERY_LIMIT}")
    for name, value in (("since", since), ("until", until)):
        if value is not None and value.tzinfo is None:
            raise AuditQueryError(f"{name} must carry a timezone (e.g. 2025-01-01T00:00:00Z)")
    if since is not None and until is not None and since >= until:
        raise AuditQueryError("since must be before until")
    query = select(AuditEntry)
    if since is not None:
        query = query.where(AuditEntry.occurred_at >= since)
    if until is not None:
        query = query.where(AuditEntry.occurred_at < until)
    if username is not None:
        query = query.where(AuditEntry.username == username.lower())
    if model_name is not None:
        query = query.where(AuditEntry.model_name == model_name)
    if model_version is not None:
        query = query.where(AuditEntry.model_version == model_version)
    query = query.order_by(AuditEntry.occurred_at.desc(), AuditEntry.id.desc()).limit(limit)
    try:
        return [AuditRecord.from_entry(entry) for entry in session.scalars(query)]
    except DBAPIError as exc:
        if is_unavailable(exc):
            raise DatabaseUnavailableError(f"platform database unavailable: {exc.orig}") from exc
        raise
