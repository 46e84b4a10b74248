"""``GET /api/v1/models``: what this worker serves, from which registry, and the last failures;
``GET /api/v1/models/{name}/drift``: how what the served version sees and says has drifted."""

from __future__ import annotations

import math
import os
from typing import Any

from fastapi import APIRouter, HTTPException, status
from starlette.concurrency import run_in_threadpool

from hearteye.monitoring.drift import DriftReport
from serving.deps import AUTH_ERRORS, AdminUser, Clinician, RuntimeDep, StoreDep
from serving.registry_source import redact_uri
from serving.schemas import (
    DriftResponse,
    DriftSignalOut,
    ErrorOut,
    LoadedVersion,
    ModelsResponse,
    ModelStatus,
    RegistryStatus,
    SwapErrorOut,
)
from serving.store import ModelStore, UnknownModelError

router = APIRouter(prefix="/api/v1", tags=["models"], responses=AUTH_ERRORS)


@router.get("/models", response_model=ModelsResponse)
async def list_models(user: Clinician, store: StoreDep) -> ModelsResponse:
    """The served models: loaded version, run, when and how fast it loaded, last swap error."""
    return models_status(store)


def models_status(store: ModelStore) -> ModelsResponse:
    settings = store.settings
    models = []
    for slot in store.slots.values():
        current = slot.current
        error = slot.last_error
        models.append(
            ModelStatus(
                name=slot.name,
                default=slot.name == settings.default_model,
                alias=settings.model_alias,
                alias_version=slot.alias_version,
                loaded=None
                if current is None
                else LoadedVersion(
                    version=current.version,
                    run_id=current.run_id,
                    kind=current.kind,
                    source=current.source,
                    loaded_at=current.loaded_at,
                    load_s=round(current.load_s, 3),
                ),
                micro_batched=slot.name in settings.micro_batch_models,
                swaps=slot.swaps,
                last_swap_at=slot.last_swap_at,
                last_error=None
                if error is None
                else SwapErrorOut(
                    version=error.version, stage=error.stage, message=error.message, at=error.at
                ),
            )
        )
    return ModelsResponse(
        worker_pid=os.getpid(),
        registry=RegistryStatus(
            uri=redact_uri(store.source.uri),
            reachable=store.registry_reachable,
            error=store.registry_error,
            last_poll_at=store.last_poll_at,
        ),
        models=models,
    )


@router.get(
    "/models/{name}/drift",
    response_model=DriftResponse,
    responses={
        403: {"model": ErrorOut, "description": "Only admins read drift"},
        404: {"model": ErrorOut, "description": "The model is not served here"},
        503: {
            "model": ErrorOut,
            "description": "No version of the model is loaded, or drift monitoring is off",
        },
    },
)
async def model_drift(
    name: str, user: AdminUser, store: StoreDep, runtime: RuntimeDep
) -> DriftResponse:
    """The answering worker's drift window of the served version against its reference profile
    (docs/monitoring.md): PSI per signal, which fire, the class mix and low-confidence rate."""
    try:
        loaded = store.get(name)
    except UnknownModelError as exc:
        raise HTTPException(status.HTTP_404_NOT_FOUND, str(exc)) from None
    monitor = runtime.drift
    if monitor is None:
        raise HTTPException(
            status.HTTP_503_SERVICE_UNAVAILABLE,
            "drift monitoring is off (HEARTEYE_DRIFT_MONITORING=false)",
        )
    settings = runtime.settings
    report = await run_in_threadpool(monitor.report, loaded)
    base: dict[str, Any] = {
        "model": loaded.name,
        "version": loaded.version,
        "worker_pid": os.getpid(),
        "window_s": settings.drift_window_s,
        "window_max_strips": settings.drift_window_max_strips,
        "min_strips": settings.drift_min_strips,
        "psi_threshold": settings.drift_psi_threshold,
    }
    if report is None:
        return DriftResponse(
            **base,
            monitored=False,
            strips=0,
            beats=0,
            enough_data=False,
            fired=[],
            signals=[],
            class_mix={},
            reference_class_mix={},
            class_mix_p_value=None,
            low_confidence_per_min=None,
            reference_low_confidence_per_min=None,
            reference=None,
        )
    assert loaded.profile is not None
    return DriftResponse(
        **base,
        monitored=True,
        strips=report.strips,
        beats=report.beats,
        enough_data=report.enough_data,
        fired=report.fired,
        signals=_signals(report),
        class_mix=report.class_mix,
        reference_class_mix=report.reference_class_mix,
        class_mix_p_value=_finite(report.class_mix_p_value),
        low_confidence_per_min=_finite(report.low_confidence_per_min),
        reference_low_confidence_per_min=report.reference_low_confidence_per_min,
        reference={
            **loaded.profile.source,
            "strips": loaded.profile.strips,
            "beats": loaded.profile.beats,
            "strip_seconds": loaded.profile.strip_seconds,
            "low_confidence": loaded.profile.low_confidence,
        },
    )


def _signals(report: DriftReport) -> list[DriftSignalOut]:
    return [
        DriftSignalOut(
            signal=s.signal,
            psi=_finite(s.psi),
            fired=s.fired,
            window_median=s.window_median,
            reference_median=s.reference_median,
            n=s.n,
        )
        for s in report.signals
    ]


def _finite(value: float) -> float | None:
    return value if math.isfinite(value) else None
