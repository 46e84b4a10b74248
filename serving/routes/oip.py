"""The Open Inference Protocol (KServe V2 REST) beside ``/api/v1``: health, metadata, inference.

``/v2`` and ``/v2/health/*`` need no token (as ``/live`` and ``/ready``); the model routes take
the same bearer token and role as ``/api/v1/predict``, and ``.../infer`` is audited like it (the
middleware's prediction routes). Inference is ``serving.inference``'s: the same strip checks, the
same classifier call (micro-batched where configured), the same rounded probabilities.
Errors are ``{"error": "..."}`` (``serving.errors``): 400 for a bad request, 401/403 for the
token, 404 for a model or version not served, 503 while no version is loaded.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse

import hearteye
from serving.context import request_context
from serving.deps import Clinician, RuntimeDep, runtime_of
from serving.fastjson import FastJSONRoute, json_response
from serving.inference import check_strip, predict, record_answer, strip_digest
from serving.loading import LoadedModel
from serving.oip import (
    BINARY_HEADER,
    PREFIX,
    ErrorResponse,
    InferRequest,
    InferResponse,
    ModelMetadata,
    ModelReady,
    OipError,
    ServerLive,
    ServerMetadata,
    ServerReady,
    model_metadata,
    response_outputs,
    strip_from_request,
)
from serving.runtime import Runtime
from serving.store import ModelUnavailableError, UnknownModelError

# V2 clients (tritonclient among them) send JSON bodies without a Content-Type: read them as JSON.
router = APIRouter(
    prefix=PREFIX,
    tags=["open inference protocol (v2)"],
    route_class=FastJSONRoute,
    strict_content_type=False,
)

ERRORS: dict[int | str, dict[str, Any]] = {
    400: {"model": ErrorResponse, "description": "An input is missing, malformed or out of range"},
    401: {"model": ErrorResponse, "description": "Missing, expired or invalid token"},
    403: {"model": ErrorResponse, "description": "The user's role may not predict"},
    404: {"model": ErrorResponse, "description": "Model or version not served here"},
    413: {"model": ErrorResponse, "description": "Body over the size limit"},
    503: {"model": ErrorResponse, "description": "No version of the model is loaded"},
}


@router.get("", response_model=ServerMetadata)
async def server_metadata() -> ServerMetadata:
    """The server's name, version and protocol extensions (none)."""
    return ServerMetadata(name="hearteye", version=hearteye.__version__, extensions=[])


@router.get("/health/live", response_model=ServerLive)
async def server_live() -> ServerLive:
    """The process answers (as ``/live``)."""
    return ServerLive(live=True)


@router.get(
    "/health/ready",
    response_model=ServerReady,
    responses={503: {"model": ServerReady, "description": "The default model is not loaded"}},
)
async def server_ready(runtime: RuntimeDep) -> JSONResponse:
    """Ready once the default model has a loaded version (as ``/ready``)."""
    ready = runtime.store is not None and runtime.store.ready()
    return JSONResponse({"ready": ready}, status_code=200 if ready else 503)


@router.get("/models/{model_name}", response_model=ModelMetadata, responses=ERRORS)
async def get_model_metadata(model_name: str, user: Clinician, request: Request) -> ModelMetadata:
    """The model's inputs and outputs (datatypes, shapes, class order) and the version served."""
    return _metadata(runtime_of(request), model_name, None)


@router.get(
    "/models/{model_name}/versions/{model_version}", response_model=ModelMetadata, responses=ERRORS
)
async def get_model_version_metadata(
    model_name: str, model_version: str, user: Clinician, request: Request
) -> ModelMetadata:
    """As without a version; 404 naming the served version when it is another."""
    return _metadata(runtime_of(request), model_name, model_version)


@router.get("/models/{model_name}/ready", response_model=ModelReady, responses=ERRORS)
async def get_model_ready(model_name: str, user: Clinician, request: Request) -> JSONResponse:
    """200 and ``ready: true`` when a version is loaded; 503 and ``ready: false`` before."""
    return _ready(runtime_of(request), model_name, None)


@router.get(
    "/models/{model_name}/versions/{model_version}/ready",
    response_model=ModelReady,
    responses=ERRORS,
)
async def get_model_version_ready(
    model_name: str, model_version: str, user: Clinician, request: Request
) -> JSONResponse:
    """As without a version; 404 naming the served version when it is another."""
    return _ready(runtime_of(request), model_name, model_version)


@router.post("/models/{model_name}/infer", response_model=InferResponse, responses=ERRORS)
async def infer(model_name: str, body: InferRequest, user: Clinician, request: Request) -> Response:
    """Label every beat of one strip (inputs `signal`, `fs`, optional `r_peaks`)."""
    return await _infer(request, body, model_name, None)


@router.post(
    "/models/{model_name}/versions/{model_version}/infer",
    response_model=InferResponse,
    responses=ERRORS,
)
async def infer_version(
    model_name: str, model_version: str, body: InferRequest, user: Clinician, request: Request
) -> Response:
    """As without a version; 404 naming the served version when it is another."""
    return await _infer(request, body, model_name, model_version)


def _metadata(runtime: Runtime, name: str, version: str | None) -> ModelMetadata:
    loaded = _served(runtime, name, version)
    return model_metadata(loaded.name, loaded.version, loaded.kind)


def _ready(runtime: Runtime, name: str, version: str | None) -> JSONResponse:
    try:
        _served(runtime, name, version)
    except ModelUnavailableError:
        return JSONResponse({"name": name, "ready": False}, status_code=503)
    return JSONResponse({"name": name, "ready": True})


async def _infer(
    request: Request, body: InferRequest, model_name: str, model_version: str | None
) -> Response:
    if BINARY_HEADER in request.headers:
        raise OipError(
            "the binary tensor data extension is not supported: send the tensors as JSON data "
            "(tritonclient: binary_data=False)"
        )
    runtime = runtime_of(request)
    ctx = request_context(request)
    tensors = strip_from_request(body)
    ctx.signal_sha256 = strip_digest([tensors.signal])
    loaded = _served(runtime, model_name, model_version)
    checked = check_strip(tensors.strip, tensors.signal, runtime.settings, ("inputs",))
    predictions = await predict(
        loaded, [checked.strip], runtime.batchers.get(loaded.name), loc=("inputs",)
    )
    prediction = predictions[0]
    record_answer(ctx, runtime, loaded, [prediction.counts()])
    outputs = response_outputs(prediction, body.outputs)
    return json_response(
        {
            "model_name": loaded.name,
            "model_version": loaded.version,
            "id": body.id if body.id is not None else ctx.request_id,
            "outputs": [o.model_dump(exclude_none=True) for o in outputs],
        }
    )


def _served(runtime: Runtime, name: str, version: str | None) -> LoadedModel:
    """The loaded version of ``name``; 404 (OipError) for a model or version not served."""
    try:
        loaded = runtime.require_store().get(name)
    except UnknownModelError as exc:
        raise OipError(str(exc), status_code=404) from exc
    if version is not None and version != loaded.version:
        raise OipError(
            f"model {name!r} version {version!r} is not served: version {loaded.version} is "
            f"(the {runtime.settings.model_alias!r} alias)",
            status_code=404,
        )
    return loaded
