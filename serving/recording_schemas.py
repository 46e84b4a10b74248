"""Response models of the recordings and analyses routes (docs/recordings.md is the contract)."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from hearteye_platform.db.models import AnalysisRow, RecordingRow


class RecordingOut(BaseModel):
    id: str
    name: str
    format: str = Field(description="wfdb, edf, bdf or csv")
    fs: float = Field(description="Sampling rate (Hz); sample positions are in this rate.")
    leads: list[str]
    default_lead: str
    n_samples: int
    duration_s: float
    has_reference: bool
    n_reference_beats: int | None
    sha256: str
    size_bytes: int
    owner: str
    created_at: datetime

    @classmethod
    def of(cls, row: RecordingRow) -> RecordingOut:
        return cls(
            id=row.id,
            name=row.name,
            format=row.format,
            fs=row.fs,
            leads=list(row.leads),
            default_lead=row.default_lead,
            n_samples=row.n_samples,
            duration_s=round(row.n_samples / row.fs, 3),
            has_reference=row.n_reference_beats is not None,
            n_reference_beats=row.n_reference_beats,
            sha256=row.sha256,
            size_bytes=row.size_bytes,
            owner=row.owner,
            created_at=row.created_at,
        )


class RecordingList(BaseModel):
    total: int
    offset: int
    limit: int
    items: list[RecordingOut]


class SignalOut(BaseModel):
    lead: str
    fs: float
    units: Literal["mV"] = "mV"
    start_s: float
    end_s: float
    start_sample: int
    step: int = Field(description="Samples per point; > 1: min/max envelope in `min`/`max`.")
    samples: list[float] | None
    min: list[float] | None
    max: list[float] | None


class ReferenceBeatOut(BaseModel):
    sample: int
    time_s: float
    label: str
    symbol: str


class ReferenceOut(BaseModel):
    fs: float
    counts: dict[str, int]
    beats: list[ReferenceBeatOut]


class AnalysisRequest(BaseModel):
    model_config = ConfigDict(extra="forbid", protected_namespaces=())

    model: str | None = Field(
        default=None, max_length=128, description="A served model; default: the default model."
    )
    lead: str | None = Field(
        default=None, max_length=64, description="Default: the recording's default lead."
    )


class ModelRef(BaseModel):
    name: str
    version: str | None
    run_id: str | None


class AnalysisOut(BaseModel):
    model_config = ConfigDict(protected_namespaces=())

    id: str
    recording_id: str
    owner: str
    status: Literal["queued", "running", "done", "failed"]
    progress: float
    error: str | None
    model: ModelRef
    lead: str
    fs: float
    n_beats: int | None
    counts: dict[str, int] | None
    mean_heart_rate_bpm: float | None
    reference: dict[str, Any] | None
    audit_request_id: str | None
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None

    @classmethod
    def of(cls, row: AnalysisRow, fs: float) -> AnalysisOut:
        return cls(
            id=row.id,
            recording_id=row.recording_id,
            owner=row.owner,
            status=row.status,  # type: ignore[arg-type]
            progress=row.progress,
            error=row.error,
            model=ModelRef(name=row.model_name, version=row.model_version, run_id=row.run_id),
            lead=row.lead,
            fs=fs,
            n_beats=row.n_beats,
            counts=row.counts,
            mean_heart_rate_bpm=row.mean_heart_rate_bpm,
            reference=row.reference,
            audit_request_id=row.audit_request_id,
            created_at=row.created_at,
            started_at=row.started_at,
            finished_at=row.finished_at,
        )


class AnalysisList(BaseModel):
    items: list[AnalysisOut]


class BeatOut(BaseModel):
    sample: int
    time_s: float
    label: str
    probabilities: dict[str, float]


class BeatsPage(BaseModel):
    total: int
    offset: int
    limit: int
    beats: list[BeatOut]


class SummaryOut(BaseModel):
    bin_s: float
    duration_s: float
    heart_rate_bpm: list[float | None]
    beats_s: dict[str, list[float]] = Field(description="Times of S, V, F and Q beats (s).")
    counts: dict[str, int]
