"""The Open Inference Protocol (KServe V2 REST) as HeartEye speaks it: bodies and tensors.

One model signature for every served model (the strip in, its beats out):

* inputs: ``signal`` FP32 ``[n]`` (mV), ``fs`` FP32 ``[1]`` (Hz), optional ``r_peaks`` INT64 ``[k]``;
* outputs: ``sample`` INT64 ``[beats]``, ``label`` BYTES ``[beats]``, ``probabilities`` FP32
  ``[beats, 5]`` (columns in :data:`~hearteye.labels.AAMI_CLASSES` order, named in the metadata).

This module turns an infer request's tensors into the same strip ``/api/v1/predict`` validates,
and a prediction into output tensors; the checks on the strip, the classifier call and the
answer's values are :mod:`serving.inference`'s, shared with ``/api/v1``. Errors name the tensor
and are answered ``{"error": "..."}`` with a 4xx (:class:`OipError`, ``serving.errors``).
JSON tensor data only: the binary tensor extension (Triton's) is refused with a message.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import numpy.typing as npt
from pydantic import BaseModel, ConfigDict, Field

from hearteye.errors import HeartEyeError
from hearteye.labels import AAMI_CLASSES
from hearteye.model.wrapper import StripPrediction
from serving.inference import rounded_probabilities
from serving.schemas import Strip

#: Path prefix of the protocol's routes (errors under it take the protocol's shape).
PREFIX = "/v2"
#: The header of Triton's binary tensor data extension (not supported).
BINARY_HEADER = "inference-header-content-length"

Datatype = Literal[
    "BOOL", "UINT8", "UINT16", "UINT32", "UINT64", "INT8", "INT16", "INT32", "INT64",
    "FP16", "FP32", "FP64", "BYTES",
]  # fmt: skip
Parameters = dict[str, bool | int | float | str]
CLASS_ORDER = ",".join(AAMI_CLASSES)


class OipError(HeartEyeError):
    """A request the protocol answers ``{"error": message}`` with ``status_code``."""

    def __init__(self, message: str, status_code: int = 400) -> None:
        self.status_code = status_code
        super().__init__(message)


# -- bodies ------------------------------------------------------------------------------------


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid", protected_namespaces=())


class RequestInput(_Body):
    name: str = Field(description="`signal`, `fs` or `r_peaks`.")
    shape: list[int] = Field(description="Dimensions; the data holds their product of values.")
    datatype: Datatype
    parameters: Parameters | None = None
    data: list[Any] = Field(description="The values, flat or nested, in row-major order.")


class RequestOutput(_Body):
    name: str = Field(description="`sample`, `label` or `probabilities`.")
    parameters: Parameters | None = None


class InferRequest(_Body):
    """A V2 inference request: one ECG strip as named tensors."""

    id: str | None = Field(default=None, description="Echoed in the response.")
    parameters: Parameters | None = None
    inputs: list[RequestInput] = Field(
        min_length=1,
        json_schema_extra={
            "example": [
                {"name": "signal", "shape": [3], "datatype": "FP32", "data": [-0.1, -0.1, 0.2]},
                {"name": "fs", "shape": [1], "datatype": "FP32", "data": [360]},
            ]
        },
    )
    outputs: list[RequestOutput] | None = Field(
        default=None, description="The outputs wanted; all of them when omitted."
    )


class ResponseOutput(BaseModel):
    name: str
    shape: list[int]
    datatype: Datatype
    parameters: Parameters | None = None
    data: list[Any]


class InferResponse(BaseModel):
    model_config = ConfigDict(protected_namespaces=())

    model_name: str
    model_version: str
    id: str = Field(description="The request's `id`, else this request's X-Request-ID.")
    parameters: Parameters | None = None
    outputs: list[ResponseOutput]


class TensorMetadata(BaseModel):
    name: str
    datatype: Datatype
    shape: list[int] = Field(description="-1: a dimension of any size.")
    parameters: Parameters | None = None


class ModelMetadata(BaseModel):
    name: str
    versions: list[str] = Field(description="The version served (the production alias's).")
    platform: str
    inputs: list[TensorMetadata]
    outputs: list[TensorMetadata]
    parameters: Parameters | None = None


class ServerMetadata(BaseModel):
    name: str
    version: str
    extensions: list[str]


class ServerLive(BaseModel):
    live: bool


class ServerReady(BaseModel):
    ready: bool


class ModelReady(BaseModel):
    name: str
    ready: bool


class ErrorResponse(BaseModel):
    error: str


# -- the signature ----------------------------------------------------------------------------


@dataclass(frozen=True)
class TensorSpec:
    """One tensor of the signature: its metadata and the datatypes accepted for it."""

    name: str
    datatype: Datatype
    shape: tuple[int, ...]
    accepted: tuple[Datatype, ...] = ()
    required: bool = True

    def metadata(self) -> TensorMetadata:
        parameters: Parameters | None = (
            {"classes": CLASS_ORDER} if self.name == "probabilities" else None
        )
        return TensorMetadata(
            name=self.name, datatype=self.datatype, shape=list(self.shape), parameters=parameters
        )


INPUTS = (
    TensorSpec("signal", "FP32", (-1,), accepted=("FP32", "FP64")),
    TensorSpec("fs", "FP32", (1,), accepted=("FP32", "FP64")),
    TensorSpec("r_peaks", "INT64", (-1,), accepted=("INT64", "INT32"), required=False),
)
OUTPUTS = (
    TensorSpec("sample", "INT64", (-1,)),
    TensorSpec("label", "BYTES", (-1,)),
    TensorSpec("probabilities", "FP32", (-1, len(AAMI_CLASSES))),
)
_INPUTS = {spec.name: spec for spec in INPUTS}
_OUTPUT_NAMES = tuple(spec.name for spec in OUTPUTS)


def model_metadata(name: str, version: str, kind: str) -> ModelMetadata:
    return ModelMetadata(
        name=name,
        versions=[version],
        platform=f"hearteye_{kind}",
        inputs=[spec.metadata() for spec in INPUTS],
        outputs=[spec.metadata() for spec in OUTPUTS],
        parameters={"classes": CLASS_ORDER},
    )


# -- request tensors -> strip -------------------------------------------------------------------


@dataclass(frozen=True)
class StripTensors:
    """The strip an infer request carries, in the shape ``check_strip`` takes it."""

    strip: Strip
    signal: npt.NDArray[np.float64]


def strip_from_request(body: InferRequest) -> StripTensors:
    """The request's ``signal``, ``fs`` and ``r_peaks``; OipError names the tensor at fault."""
    given: dict[str, RequestInput] = {}
    for tensor in body.inputs:
        spec = _INPUTS.get(tensor.name)
        if spec is None:
            raise OipError(
                f"unknown input {tensor.name!r}: the inputs are "
                f"{', '.join(s.name for s in INPUTS)} (GET /v2/models/NAME for the metadata)"
            )
        if tensor.name in given:
            raise OipError(f"input {tensor.name!r} is given twice")
        if tensor.datatype not in spec.accepted:
            raise OipError(
                f"input {tensor.name!r}: datatype {tensor.datatype} is not accepted "
                f"(use {' or '.join(spec.accepted)})"
            )
        given[tensor.name] = tensor
    for spec in INPUTS:
        if spec.required and spec.name not in given:
            raise OipError(f"input {spec.name!r} is missing")
    signal = _values(given["signal"], np.float64, ndim=1)
    fs = _values(given["fs"], np.float64, ndim=1)
    if fs.size != 1:
        raise OipError(f"input 'fs': shape must be [1] (one sampling rate), got {fs.shape[0]}")
    r_peaks = None
    if "r_peaks" in given:
        r_peaks = _values(given["r_peaks"], np.int64, ndim=1).tolist()
    _check_outputs(body.outputs)
    # `check_strip` reads fs and r_peaks from the strip and the samples from `signal`.
    strip = Strip.model_construct(signal=[], fs=float(fs[0]), r_peaks=r_peaks)
    return StripTensors(strip=strip, signal=signal)


def _values(tensor: RequestInput, dtype: type[np.generic], ndim: int) -> npt.NDArray[Any]:
    name = tensor.name
    if len(tensor.shape) != ndim or any(d < 0 for d in tensor.shape):
        raise OipError(
            f"input {name!r}: shape {tensor.shape} must have {ndim} non-negative dimension(s)"
        )
    kind = "integers" if dtype is np.int64 else "numbers"
    try:
        raw = np.asarray(tensor.data)
    except ValueError:  # ragged nesting
        raw = None
    if raw is None or (raw.size and raw.dtype.kind not in ("iu" if dtype is np.int64 else "iuf")):
        raise OipError(
            f"input {name!r}: data must be {kind} ({tensor.datatype}), nested as the shape says"
        )
    values = raw.astype(dtype)
    expected = math.prod(tensor.shape)
    if values.size != expected:
        raise OipError(
            f"input {name!r}: shape {tensor.shape} holds {expected} values, data has {values.size}"
        )
    return values.reshape(tensor.shape)


def _check_outputs(outputs: list[RequestOutput] | None) -> None:
    for output in outputs or ():
        if output.name not in _OUTPUT_NAMES:
            raise OipError(
                f"unknown output {output.name!r}: the outputs are {', '.join(_OUTPUT_NAMES)}"
            )


# -- prediction -> response tensors -----------------------------------------------------------


def response_outputs(
    prediction: StripPrediction, wanted: list[RequestOutput] | None
) -> list[ResponseOutput]:
    """The prediction as output tensors (the ones asked for, in the signature's order)."""
    names = set(_OUTPUT_NAMES) if not wanted else {o.name for o in wanted}
    beats = len(prediction.labels)
    rows = rounded_probabilities(prediction)  # the values /api/v1/predict answers
    tensors = {
        "sample": ResponseOutput(
            name="sample", shape=[beats], datatype="INT64", data=prediction.samples.tolist()
        ),
        "label": ResponseOutput(
            name="label", shape=[beats], datatype="BYTES", data=list(prediction.labels)
        ),
        "probabilities": ResponseOutput(
            name="probabilities",
            shape=[beats, len(AAMI_CLASSES)],
            datatype="FP32",
            parameters={"classes": CLASS_ORDER},
            data=[p for row in rows for p in row],
        ),
    }
    return [tensors[name] for name in _OUTPUT_NAMES if name in names]
