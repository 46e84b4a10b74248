"""``/api/v1/recordings``: upload, list, read, delete recordings; their signal and reference;
queue analyses of them. A clinician sees their own, an admin everyone's (docs/recordings.md)."""

from __future__ import annotations

import math
from datetime import UTC, datetime
from typing import Annotated, Any

import numpy as np
from fastapi import APIRouter, File, Form, Query, Request, Response, UploadFile, status

from hearteye.ecgfiles.recording import choose_lead
from hearteye.labels import AAMI_CLASSES
from hearteye_platform.db.models import AnalysisRow, utcnow
from hearteye_platform.identity import Role, UserInfo
from serving.context import request_context
from serving.deps import Clinician, runtime_of
from serving.recording_schemas import (
    AnalysisList,
    AnalysisOut,
    AnalysisRequest,
    RecordingList,
    RecordingOut,
    ReferenceOut,
    SignalOut,
)
from serving.recording_service import Upload, new_id
from serving.routes.audit import IsoDateTime

router = APIRouter(prefix="/api/v1", tags=["recordings"])

ERRORS: dict[int | str, dict[str, Any]] = {
    401: {"description": "Missing, expired or invalid token"},
    404: {"description": "No such recording, or not yours"},
}
#: Longest span one signal request returns (s), and the most points.
MAX_SIGNAL_SPAN_S = 3600.0
MAX_POINTS = 20_000


def owner_filter(user: UserInfo) -> str | None:
    """The owner a user's queries are limited to (None: an admin sees everything)."""
    return None if user.role == Role.ADMIN else user.username


@router.post(
    "/recordings",
    status_code=status.HTTP_201_CREATED,
    response_model=RecordingOut,
    responses={
        **ERRORS,
        400: {"description": "Not a usable ECG recording; `detail` says why"},
        413: {"description": "Over HEARTEYE_RECORDINGS_MAX_UPLOAD_BYTES"},
    },
)
def upload_recording(
    user: Clinician,
    request: Request,
    files: Annotated[list[UploadFile], File(description="WFDB .hea+.dat(+.atr), EDF/BDF or CSV")],
    name: Annotated[str | None, Form(max_length=255)] = None,
    fs: Annotated[float | None, Form(description="CSV without a time column: Hz")] = None,
    lead: Annotated[str | None, Form(max_length=64)] = None,
) -> RecordingOut:
    """Store an ECG recording (nothing is stored when any check fails)."""
    service = runtime_of(request).require_recordings()
    uploads = [Upload(f.filename or "", f.file) for f in files]
    row = service.ingest(user.username, uploads, name=name, fs=fs, lead=lead)
    request_context(request).signal_sha256 = row.sha256
    return RecordingOut.of(row)


@router.get("/recordings", response_model=RecordingList, responses=ERRORS)
def list_recordings(
    user: Clinician,
    request: Request,
    q: Annotated[str | None, Query(max_length=255, description="Part of the name")] = None,
    since: Annotated[
        IsoDateTime | None, Query(description="Created at or after (UTC if no zone)")
    ] = None,
    until: Annotated[
        IsoDateTime | None, Query(description="Created at or before (UTC if no zone)")
    ] = None,
    offset: Annotated[int, Query(ge=0, le=2**31 - 1)] = 0,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
) -> RecordingList:
    """The caller's recordings (an admin's: everyone's), newest first."""
    store = runtime_of(request).require_recordings().store
    page = store.list_recordings(
        owner_filter(user),
        query=q,
        since=_utc(since),
        until=_utc(until),
        offset=offset,
        limit=limit,
    )
    items = [RecordingOut.of(r) for r in page.rows]
    return RecordingList(total=page.total, offset=offset, limit=limit, items=items)


def _utc(value: datetime | None) -> datetime | None:
    if value is None or value.tzinfo is not None:
        return value
    return value.replace(tzinfo=UTC)


@router.get("/recordings/{recording_id}", response_model=RecordingOut, responses=ERRORS)
def get_recording(recording_id: str, user: Clinician, request: Request) -> RecordingOut:
    store = runtime_of(request).require_recordings().store
    return RecordingOut.of(store.get_recording(recording_id, owner_filter(user)))


@router.delete(
    "/recordings/{recording_id}", status_code=status.HTTP_204_NO_CONTENT, responses=ERRORS
)
def delete_recording(recording_id: str, user: Clinician, request: Request) -> Response:
    """Delete the recording, its analyses and their results."""
    runtime_of(request).require_recordings().delete(recording_id, owner_filter(user))
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.get("/recordings/{recording_id}/signal", response_model=SignalOut, responses=ERRORS)
def get_signal(
    recording_id: str,
    user: Clinician,
    request: Request,
    lead: Annotated[str | None, Query(max_length=64)] = None,
    start_s: Annotated[float, Query(ge=0)] = 0.0,
    end_s: Annotated[float | None, Query(gt=0)] = None,
    max_points: Annotated[int, Query(ge=10, le=MAX_POINTS)] = 5000,
) -> SignalOut:
    """One lead between two times, in mV; a min/max envelope when over ``max_points``."""
    service = runtime_of(request).require_recordings()
    row = service.store.get_recording(recording_id, owner_filter(user))
    name = choose_lead(row.leads, lead) if lead is not None else row.default_lead
    duration = row.n_samples / row.fs
    end = min(duration, end_s if end_s is not None else start_s + 10.0)
    if end - start_s > MAX_SIGNAL_SPAN_S:
        end = start_s + MAX_SIGNAL_SPAN_S
    lo = min(row.n_samples, math.floor(start_s * row.fs))
    hi = max(lo, min(row.n_samples, math.ceil(end * row.fs)))
    x = np.asarray(service.decoded(row).lead(name)[lo:hi], dtype=np.float32)
    out: dict[str, Any] = {"samples": None, "min": None, "max": None, "step": 1}
    if len(x) <= max_points:
        out["samples"] = np.round(x.astype(np.float64), 4).tolist()
    else:
        step = math.ceil(len(x) / max_points)
        pad = (-len(x)) % step
        padded = np.concatenate([x, np.full(pad, x[-1], np.float32)]).reshape(-1, step)
        out.update(
            step=step,
            min=np.round(padded.min(axis=1).astype(np.float64), 4).tolist(),
            max=np.round(padded.max(axis=1).astype(np.float64), 4).tolist(),
        )
    return SignalOut(
        lead=name,
        fs=row.fs,
        start_s=round(lo / row.fs, 6),
        end_s=round(hi / row.fs, 6),
        start_sample=lo,
        **out,
    )


@router.get("/recordings/{recording_id}/reference", response_model=ReferenceOut, responses=ERRORS)
def get_reference(
    recording_id: str,
    user: Clinician,
    request: Request,
    start_s: Annotated[float, Query(ge=0)] = 0.0,
    end_s: Annotated[float | None, Query(gt=0)] = None,
) -> ReferenceOut | Response:
    """The upload's reference beat annotations (AAMI-mapped); 404 when it had none."""
    service = runtime_of(request).require_recordings()
    row = service.store.get_recording(recording_id, owner_filter(user))
    decoded = service.decoded(row)
    if decoded.reference_samples is None or decoded.reference_labels is None:
        return Response(
            '{"detail":"this recording was uploaded without reference annotations"}',
            status_code=404,
            media_type="application/json",
        )
    samples, labels = decoded.reference_samples, decoded.reference_labels
    symbols = decoded.reference_symbols or []
    lo = int(np.searchsorted(samples, start_s * row.fs))
    hi = len(samples) if end_s is None else int(np.searchsorted(samples, end_s * row.fs))
    beats = [
        {
            "sample": int(samples[i]),
            "time_s": round(float(samples[i]) / row.fs, 4),
            "label": AAMI_CLASSES[int(labels[i])],
            "symbol": symbols[i] if i < len(symbols) else "",
        }
        for i in range(lo, max(lo, hi))
    ]
    counts = np.bincount(labels, minlength=len(AAMI_CLASSES)).tolist()
    return ReferenceOut.model_validate(
        {"fs": row.fs, "counts": dict(zip(AAMI_CLASSES, counts, strict=True)), "beats": beats}
    )


@router.post(
    "/recordings/{recording_id}/analyses",
    status_code=status.HTTP_202_ACCEPTED,
    response_model=AnalysisOut,
    responses={
        **ERRORS,
        400: {"description": "The recording has no such lead"},
        422: {"description": "The model is not served here"},
        503: {"description": "The model has no loaded version"},
    },
)
def create_analysis(
    recording_id: str, body: AnalysisRequest, user: Clinician, request: Request
) -> AnalysisOut:
    """Queue an analysis of the whole recording by a served model (its production version)."""
    runtime = runtime_of(request)
    service = runtime.require_recordings()
    row = service.store.get_recording(recording_id, owner_filter(user))
    loaded = runtime.require_store().get(body.model)
    lead = choose_lead(row.leads, body.lead) if body.lead is not None else row.default_lead
    analysis = AnalysisRow(
        id=new_id(),
        recording_id=row.id,
        owner=row.owner,
        model_name=loaded.name,
        lead=lead,
        status="queued",
        progress=0.0,
        attempts=0,
        audit_request_id=new_id(),
        created_at=utcnow(),
    )
    service.store.add_analysis(analysis)
    ctx = request_context(request)
    ctx.signal_sha256 = row.sha256
    if runtime.analysis_workers is not None:
        runtime.analysis_workers.wake()
    return AnalysisOut.of(analysis, row.fs)


@router.get("/recordings/{recording_id}/analyses", response_model=AnalysisList, responses=ERRORS)
def list_analyses(recording_id: str, user: Clinician, request: Request) -> AnalysisList:
    service = runtime_of(request).require_recordings()
    row = service.store.get_recording(recording_id, owner_filter(user))
    return AnalysisList(
        items=[AnalysisOut.of(a, row.fs) for a in service.store.list_analyses(row.id)]
    )
