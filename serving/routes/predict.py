"""``POST /api/v1/predict`` and ``POST /api/v1/predict/batch``.

Each request takes the model store's current version once and keeps it to the end (a swap in the
middle does not affect it). Inference runs off the event loop: in the thread pool, or through the
model's micro-batcher. The middleware writes the audit record from what is set on the context.

These are the hot routes, kept lean: the body is parsed by pydantic-core (``FastJSONRoute``) and
validated by the request model; the user comes from one dependency chain (``Clinician``); the
runtime and the request context are plain calls on the request; the answer is built from plain
values of the response model's shape and serialised once by pydantic-core (the declared
``response_model`` documents it; ``tests/serving`` validate answers against it).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from fastapi import APIRouter, Request, Response

from serving.context import RequestContext, request_context
from serving.deps import AUTH_ERRORS, Clinician, runtime_of
from serving.fastjson import FastJSONRoute, json_response
from serving.inference import (
    InputError,
    check_strip,
    predict,
    samples,
    strip_answer,
    strip_digest,
)
from serving.loading import LoadedModel
from serving.runtime import Runtime
from serving.schemas import (
    ErrorOut,
    PredictBatchRequest,
    PredictBatchResponse,
    PredictRequest,
    PredictResponse,
)

router = APIRouter(
    prefix="/api/v1", tags=["predict"], route_class=FastJSONRoute, responses=AUTH_ERRORS
)

ERRORS: dict[int | str, dict[str, Any]] = {
    413: {"model": ErrorOut, "description": "Body over the size limit (refused before parsing)"},
    422: {"description": "A field is invalid; `detail[].loc` names it and `msg` the limit"},
    503: {"model": ErrorOut, "description": "No version of the model is loaded"},
}


@router.post("/predict", response_model=PredictResponse, responses=ERRORS)
async def predict_strip(body: PredictRequest, user: Clinician, request: Request) -> Response:
    """Label every beat of one strip with the production version of a model."""
    runtime = runtime_of(request)
    ctx = request_context(request)
    signal = samples(body)
    ctx.signal_sha256 = strip_digest([signal])
    loaded = runtime.require_store().get(body.model)
    checked = check_strip(body, signal, runtime.settings)
    predictions = await predict(loaded, [checked.strip], runtime.batchers.get(loaded.name))
    answer = strip_answer(predictions[0])
    _answered(ctx, runtime, loaded, [answer])
    return json_response({"request_id": ctx.request_id, "model": _ref(loaded), **answer})


@router.post("/predict/batch", response_model=PredictBatchResponse, responses=ERRORS)
async def predict_batch(body: PredictBatchRequest, user: Clinician, request: Request) -> Response:
    """Label the beats of several strips (one model, one classifier call); one result each."""
    runtime = runtime_of(request)
    ctx = request_context(request)
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
    answers = [strip_answer(p) for p in predictions]
    _answered(ctx, runtime, loaded, answers)
    return json_response(
        {
            "request_id": ctx.request_id,
            "model": _ref(loaded),
            "results": answers,
        }
    )


def _ref(loaded: LoadedModel) -> dict[str, str | None]:
    return {"name": loaded.name, "version": loaded.version, "run_id": loaded.run_id}


def _answered(
    ctx: RequestContext,
    runtime: Runtime,
    loaded: LoadedModel,
    answers: Sequence[dict[str, Any]],
) -> None:
    """Record who answered and what, for the audit record, the log line and the metrics."""
    counts: dict[str, int] = {}
    for answer in answers:
        for label, n in answer["counts"].items():
            if n:
                counts[label] = counts.get(label, 0) + n
    ctx.answered_by(loaded.name, loaded.version, loaded.run_id)
    ctx.n_beats = sum(counts.values())
    ctx.label_counts = counts
    runtime.metrics.predicted(loaded.name, loaded.version, len(answers), counts)
