"""``/api/v1/analyses/{id}``: an analysis's state and results (docs/recordings.md)."""

from __future__ import annotations

import io
from collections.abc import Iterator
from typing import Annotated, Any

import numpy as np
from fastapi import APIRouter, HTTPException, Query, Request, status
from fastapi.responses import StreamingResponse

from hearteye.holter import BeatTable, heart_rate_trend
from hearteye.labels import AAMI_CLASSES
from hearteye_platform.db.models import AnalysisRow, RecordingRow
from serving.deps import Clinician, runtime_of
from serving.recording_schemas import AnalysisOut, BeatsPage, SummaryOut
from serving.recording_service import RecordingService
from serving.routes.recordings import owner_filter

router = APIRouter(prefix="/api/v1", tags=["recordings"])

ERRORS: dict[int | str, dict[str, Any]] = {
    401: {"description": "Missing, expired or invalid token"},
    404: {"description": "No such analysis, or not yours"},
}
DONE_ERRORS: dict[int | str, dict[str, Any]] = {
    **ERRORS,
    409: {"description": "The analysis is not done (queued, running or failed)"},
}
MAX_BEATS_PAGE = 20_000
CSV_ROWS_PER_CHUNK = 5000


def _load(
    request: Request, analysis_id: str, user: Any
) -> tuple[RecordingService, AnalysisRow, RecordingRow]:
    service = runtime_of(request).require_recordings()
    analysis = service.store.get_analysis(analysis_id, owner_filter(user))
    recording = service.store.get_recording(analysis.recording_id, None)
    return service, analysis, recording


def _beats(service: RecordingService, analysis: AnalysisRow) -> BeatTable:
    if analysis.status != "done":
        raise HTTPException(
            status.HTTP_409_CONFLICT,
            f"analysis {analysis.id} is {analysis.status}: beats exist once it is done",
        )
    return service.beats(analysis)


@router.get("/analyses/{analysis_id}", response_model=AnalysisOut, responses=ERRORS)
def get_analysis(analysis_id: str, user: Clinician, request: Request) -> AnalysisOut:
    """Status, progress, model, counts, heart rate, agreement with the reference."""
    _, analysis, recording = _load(request, analysis_id, user)
    return AnalysisOut.of(analysis, recording.fs)


@router.get("/analyses/{analysis_id}/beats", response_model=BeatsPage, responses=DONE_ERRORS)
def get_beats(
    analysis_id: str,
    user: Clinician,
    request: Request,
    start_s: Annotated[float | None, Query(ge=0)] = None,
    end_s: Annotated[float | None, Query(gt=0)] = None,
    offset: Annotated[int, Query(ge=0)] = 0,
    limit: Annotated[int, Query(ge=1, le=MAX_BEATS_PAGE)] = 5000,
) -> BeatsPage:
    """Beats between ``start_s`` and ``end_s`` (default: all), paged by ``offset``/``limit``."""
    service, analysis, _ = _load(request, analysis_id, user)
    table = _beats(service, analysis)
    window = table.between(start_s, end_s)
    total = window.stop - window.start
    lo = min(window.stop, window.start + offset)
    rows = slice(lo, min(window.stop, lo + limit))
    return BeatsPage.model_validate(
        {"total": total, "offset": offset, "limit": limit, "beats": table.records(rows)}
    )


@router.get(
    "/analyses/{analysis_id}/beats.csv",
    responses={**DONE_ERRORS, 200: {"content": {"text/csv": {}}}},
    response_class=StreamingResponse,
)
def get_beats_csv(analysis_id: str, user: Clinician, request: Request) -> StreamingResponse:
    """Every beat as CSV: ``sample,time_s,label,p_N,p_S,p_V,p_F,p_Q``."""
    service, analysis, recording = _load(request, analysis_id, user)
    table = _beats(service, analysis)

    def rows() -> Iterator[str]:
        yield "sample,time_s,label," + ",".join(f"p_{c}" for c in AAMI_CLASSES) + "\n"
        labels = np.asarray(AAMI_CLASSES)[table.classes]
        for lo in range(0, len(table), CSV_ROWS_PER_CHUNK):
            hi = min(len(table), lo + CSV_ROWS_PER_CHUNK)
            out = io.StringIO()
            for s, lab, p in zip(
                table.samples[lo:hi].tolist(),
                labels[lo:hi].tolist(),
                table.probabilities[lo:hi].tolist(),
                strict=True,
            ):
                probs = ",".join(f"{v:.6f}" for v in p)
                out.write(f"{s},{s / table.fs:.4f},{lab},{probs}\n")
            yield out.getvalue()

    filename = f"{recording.name}-{analysis.model_name}-{analysis.id[:8]}-beats.csv"
    safe = "".join(c if c.isalnum() or c in "._-" else "_" for c in filename)
    return StreamingResponse(
        rows(),
        media_type="text/csv",
        headers={"Content-Disposition": f'attachment; filename="{safe}"'},
    )


@router.get("/analyses/{analysis_id}/summary", response_model=SummaryOut, responses=DONE_ERRORS)
def get_summary(
    analysis_id: str,
    user: Clinician,
    request: Request,
    bin_s: Annotated[float, Query(ge=1, le=3600)] = 10.0,
) -> SummaryOut:
    """Heart-rate trend per ``bin_s`` and the times of S, V, F and Q beats over the recording."""
    service, analysis, recording = _load(request, analysis_id, user)
    table = _beats(service, analysis)
    duration = recording.n_samples / recording.fs
    times = np.round(table.times_s, 3)
    beats_s = {
        label: times[table.classes == i].tolist()
        for i, label in enumerate(AAMI_CLASSES)
        if label != "N"
    }
    return SummaryOut(
        bin_s=bin_s,
        duration_s=round(duration, 3),
        heart_rate_bpm=heart_rate_trend(table.samples, table.fs, duration, bin_s),
        beats_s=beats_s,
        counts=table.counts(),
    )
