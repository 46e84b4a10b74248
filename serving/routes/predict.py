"""``POST /api/v1/predict`` and ``POST /api/v1/predict/batch``.

Each request takes the model store's current version once and keeps it to the end (a swap in the
middle does not affect it). Inference runs off the event loop: in the thread pool, or through the
model's micro-batcher. The middleware writes the audit record from what is set on the context.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from fastapi import APIRouter

from hearteye.model.wrapper import StripPrediction
from serving.context import RequestContext
from serving.deps import Clinician, Context, RuntimeDep
from serving.fastjson import FastJSONRoute
from serving.inference import (
    InputError,
    check_strip,
    predict,
    samples,
    strip_digest,
    strip_result,
)
from serving.loading import LoadedModel
from serving.runtime import Runtime
from serving.schemas import (
    ModelRef,
    PredictBatchRequest,
    PredictBatchResponse,
    PredictRequest,
    PredictResponse,
)

router = APIRouter(prefix="/api/v1", tags=["predict"], route_class=FastJSONRoute)

ERRORS: dict[int | str, dict[str, Any]] = {
    401: {"description": "Missing, expired, malformed or wrongly signed token"},
    403: {"description": "The user's role may not predict"},
    413: {"description": "Body over the size limit (refused before parsing)"},
    422: {"description": "A field is invalid; `detail[].loc` names it and `msg` the limit"},
    503: {"description": "No version of the model is loaded"},
}


@router.post("/predict", response_model=PredictResponse, responses=ERRORS)
async def predict_strip(
    body: PredictRequest, user: Clinician, ctx: Context, runtime: RuntimeDep
) -> PredictResponse:
    """Label every beat of one strip with the production version of a model."""
    signal = samples(body)
    ctx.signal_sha256 = strip_digest([signal])
    loaded = runtime.require_store().get(body.model)
    checked = check_strip(body, signal, runtime.settings)
    predictions = await predict(loaded, [checked.strip], runtime.batchers.get(loaded.name))
    _answered(ctx, runtime, loaded, predictions)
    result = strip_result(predictions[0])
    return PredictResponse.model_construct(
        request_id=ctx.request_id,
        model=_ref(loaded),
        fs=result.fs,
        beats=result.beats,
        counts=result.counts,
    )


@router.post("/predict/batch", response_model=PredictBatchResponse, responses=ERRORS)
async def predict_batch(
    body: PredictBatchRequest, user: Clinician, ctx: Context, runtime: RuntimeDep
) -> PredictBatchResponse:
    """Label the beats of several strips (one model, one classifier call); one result each."""
    settings = runtime.settings
    signals = [samples(s) for s in body.strips]
    ctx.signal_sha256 = strip_digest(signals)
    if len(body.strips) > settings.max_batch_strips:
        raise InputError(
            [
                (
                    ("body", "strips"),
                    f"{len(body.strips)} strips: at most {settings.max_batch_strips} per request "
                    "(max_batch_strips)",
                )
            ]
        )
    loaded = runtime.require_store().get(body.model)
    checked = [
        check_strip(strip, signal, settings, ("body", "strips", i))
        for i, (strip, signal) in enumerate(zip(body.strips, signals, strict=True))
    ]
    predictions = await predict(
        loaded,
        [c.strip for c in checked],
        runtime.batchers.get(loaded.name),
        loc=("body", "strips") if len(checked) > 1 else ("body", "strips", 0),
    )
    _answered(ctx, runtime, loaded, predictions)
    return PredictBatchResponse.model_construct(
        request_id=ctx.request_id,
        model=_ref(loaded),
        results=[strip_result(p) for p in predictions],
    )


def _ref(loaded: LoadedModel) -> ModelRef:
    return ModelRef.model_construct(name=loaded.name, version=loaded.version, run_id=loaded.run_id)


def _answered(
    ctx: RequestContext,
    runtime: Runtime,
    loaded: LoadedModel,
    predictions: Sequence[StripPrediction],
) -> None:
    """Record who answered and what, for the audit record, the log line and the metrics."""
    counts: dict[str, int] = {}
    for prediction in predictions:
        for label, n in prediction.counts().items():
            if n:
                counts[label] = counts.get(label, 0) + n
    ctx.answered_by(loaded.name, loaded.version, loaded.run_id)
    ctx.n_beats = sum(counts.values())
    ctx.label_counts = counts
    metrics = runtime.metrics
    metrics.strips.labels(loaded.name, loaded.version).inc(len(predictions))
    for label, n in counts.items():
        metrics.beats.labels(loaded.name, loaded.version, label).inc(n)
