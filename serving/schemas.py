"""Request and response bodies of the API (pydantic; the OpenAPI schema is generated from them)."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

Label = Literal["N", "S", "V", "F", "Q"]


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid", protected_namespaces=())


class ErrorOut(BaseModel):
    """A refusal: what is wrong, in one line."""

    detail: str = Field(description="What is wrong and, where it helps, what to do.")


class Strip(_Body):
    """One single-lead ECG strip."""

    # The limits (rate range, duration, batch size) are written into the served document from
    # the settings (serving/openapi.py); the descriptions here are its defaults.
    signal: list[float] = Field(description="Samples in mV, one lead; 2 s to 10 min long at `fs`.")
    fs: float = Field(description="Sampling rate in Hz (100-1000).", examples=[360])
    r_peaks: list[int] | None = Field(
        default=None,
        description="Optional R-peak sample positions (strictly increasing, within the "
        "signal); detected when omitted.",
    )


class PredictRequest(Strip):
    """A strip and, optionally, which served model should answer."""

    model: str | None = Field(
        default=None, description="Registered model name; the default model when omitted."
    )


class PredictBatchRequest(_Body):
    """Several strips answered by one model in one request."""

    strips: list[Strip] = Field(min_length=1, description="The strips, each answered alone.")
    model: str | None = Field(
        default=None, description="Registered model name; the default model when omitted."
    )


class ModelRef(BaseModel):
    """The registered version that answered."""

    model_config = ConfigDict(protected_namespaces=())

    name: str
    version: str
    run_id: str | None


class ClassProbabilities(BaseModel):
    N: float
    S: float
    V: float
    F: float
    Q: float


class ClassCounts(BaseModel):
    N: int = 0
    S: int = 0
    V: int = 0
    F: int = 0
    Q: int = 0


class Beat(BaseModel):
    sample: int = Field(description="R-peak position in the input's own samples.")
    time_s: float = Field(description="R-peak time from the start of the strip (s).")
    label: Label = Field(description="AAMI class: the argmax of `probabilities`.")
    probabilities: ClassProbabilities


class StripResult(BaseModel):
    fs: float
    beats: list[Beat]
    counts: ClassCounts


class PredictResponse(BaseModel):
    model_config = ConfigDict(protected_namespaces=())

    request_id: str = Field(description="This request's id (also the X-Request-ID header).")
    model: ModelRef
    fs: float
    beats: list[Beat]
    counts: ClassCounts


class PredictBatchResponse(BaseModel):
    model_config = ConfigDict(protected_namespaces=())

    request_id: str
    model: ModelRef
    results: list[StripResult] = Field(description="One result per strip, in request order.")


class TokenResponse(BaseModel):
    access_token: str
    token_type: Literal["bearer"] = "bearer"  # noqa: S105 - the OAuth2 token type
    expires_in: int = Field(description="Seconds until the token expires.")


class SignIn(BaseModel):
    username: str = Field(min_length=1, max_length=64)
    password: str = Field(min_length=1, max_length=1024)


class SessionUser(BaseModel):
    username: str
    role: str


class SessionResponse(BaseModel):
    """The signed-in user; ``csrf_token`` is null for a bearer token (it needs none)."""

    user: SessionUser
    csrf_token: str | None = Field(
        description="Send as X-CSRF-Token on POST/PUT/PATCH/DELETE made with the session cookie."
    )
    expires_at: datetime
    via: str = Field(description="`cookie` (a browser session) or `bearer`.")


class LoadedVersion(BaseModel):
    version: str
    run_id: str | None
    kind: str
    source: Literal["registry", "cache"] = Field(
        description="`cache`: loaded from the on-disk cache while the registry was unreachable."
    )
    loaded_at: datetime
    load_s: float = Field(description="Seconds to download, load and smoke-test it.")


class SwapErrorOut(BaseModel):
    version: str | None
    stage: str
    message: str
    at: datetime


class ModelStatus(BaseModel):
    name: str
    default: bool
    alias: str
    alias_version: str | None = Field(
        description="Where the alias points in the registry (null: unset or not known yet)."
    )
    loaded: LoadedVersion | None
    micro_batched: bool
    swaps: int
    last_swap_at: datetime | None
    last_error: SwapErrorOut | None


class RegistryStatus(BaseModel):
    uri: str
    reachable: bool
    error: str | None
    last_poll_at: datetime | None


class ModelsResponse(BaseModel):
    worker_pid: int
    registry: RegistryStatus
    models: list[ModelStatus]


class HookAnswer(BaseModel):
    """What a registry webhook delivery did."""

    status: Literal["accepted", "ignored"] = Field(
        description="accepted: every worker reloads the alias now; ignored: verified, but not "
        "about a served model's alias."
    )
    delivery_id: str
    event: str = Field(description="MLflow's `<entity>.<action>`.")
    model: str | None
    version: str | None = Field(description="As the event says (workers read the registry).")
    detail: str | None = None


class ServiceHealth(BaseModel):
    status: Literal["up", "down", "degraded"]
    detail: str | None = None


class HealthResponse(BaseModel):
    status: Literal["healthy", "degraded", "unhealthy"]
    timestamp: datetime
    version: str
    uptime: float = Field(description="Seconds since this worker started.")
    services: dict[str, ServiceHealth]


class AuditEntryOut(BaseModel):
    model_config = ConfigDict(protected_namespaces=())

    request_id: str
    occurred_at: datetime
    username: str | None
    client_addr: str | None
    route: str
    model_name: str | None
    model_version: str | None
    run_id: str | None
    signal_sha256: str | None
    n_beats: int | None
    label_counts: dict[str, int] | None
    latency_ms: float
    status_code: int


class AuditResponse(BaseModel):
    count: int
    records: list[AuditEntryOut]


class DriftSignalOut(BaseModel):
    """One drift signal of the window against the version's reference profile."""

    signal: str = Field(description="A quality measure, `confidence` (per beat) or `class_mix`.")
    psi: float | None = Field(description="Population stability index (null: no data yet).")
    fired: bool = Field(description="PSI above the threshold with enough strips in the window.")
    window_median: float | None
    reference_median: float | None
    n: int = Field(description="Values in the window (strips, or beats for per-beat signals).")


class DriftResponse(BaseModel):
    """The drift of one served version, as seen by the worker that answers."""

    model: str
    version: str
    worker_pid: int
    monitored: bool = Field(description="False when the version has no reference profile.")
    window_s: float
    window_max_strips: int
    strips: int
    beats: int
    min_strips: int
    enough_data: bool
    psi_threshold: float
    fired: list[str]
    signals: list[DriftSignalOut]
    class_mix: dict[str, float]
    reference_class_mix: dict[str, float]
    class_mix_p_value: float | None = Field(
        description="Chi-square goodness-of-fit p-value of the window's class counts."
    )
    low_confidence_per_min: float | None = Field(
        description="Low-confidence beats per minute of ECG in the window."
    )
    reference_low_confidence_per_min: float | None
    reference: dict[str, object] | None = Field(
        description="Where the reference profile came from (records, strips)."
    )
