"""Settings of one serving process (one Gunicorn worker): ``HEARTEYE_*`` variables.

Extends :class:`hearteye.settings.HearteyeSettings` (home, environment, platform database) with
what only the API needs. MLflow's own variables (``MLFLOW_TRACKING_URI``,
``MLFLOW_TRACKING_USERNAME`` / ``MLFLOW_TRACKING_PASSWORD``) are read by MLflow, not here.
List settings take a JSON list or a comma-separated string
(``HEARTEYE_MODELS=ecg-xgboost,ecg-bilstm``).
"""

from __future__ import annotations

import ipaddress
import json
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import AliasChoices, Field, SecretStr, field_validator, model_validator
from pydantic_settings import NoDecode, SettingsConfigDict

from hearteye.settings import HearteyeSettings
from hearteye_platform.deployment import refuse_placeholder_secrets
from hearteye_platform.signin_throttle import ThrottlePolicy

CommaList = Annotated[list[str], NoDecode]
SecretList = Annotated[list[SecretStr], NoDecode]


class ServingSettings(HearteyeSettings):
    """What the prediction API serves, how it follows the registry, and its limits."""

    # `workers` is also read from WEB_CONCURRENCY (an alias): keep `ServingSettings(workers=3)`.
    model_config = SettingsConfigDict(populate_by_name=True)

    # -- models ------------------------------------------------------------------------------
    models: CommaList = Field(
        default=["ecg-xgboost", "ecg-bilstm"],
        min_length=1,
        description="Registered models served; each follows its `model_alias`.",
    )
    default_model: str = Field(
        default="ecg-xgboost",
        description="The model that answers when a request names none; /ready waits for it.",
    )
    model_alias: str = Field(
        default="production",
        min_length=1,
        description="The registry alias whose version is served (HeartEye moves `production`).",
    )
    poll_interval_s: float = Field(
        default=2.0,
        gt=0.0,
        le=300.0,
        description="Without registry webhooks (no `webhook_secret`): how often every worker "
        "resolves the alias; a promote or rollback is served within this interval plus the new "
        "version's load time.",
    )
    webhook_poll_interval_s: float = Field(
        default=30.0,
        gt=0.0,
        le=3600.0,
        description="With registry webhooks (`webhook_secret` set): how often every worker "
        "still resolves the alias, as the fallback for a lost delivery. A signed webhook "
        "wakes every worker at once instead.",
    )
    webhook_tolerance_s: float = Field(
        default=300.0,
        ge=1.0,
        le=3600.0,
        description="A webhook whose X-MLflow-Timestamp is further than this from the worker's "
        "clock is refused as stale; delivery ids are remembered twice as long, and a repeated "
        "one is refused as a replay.",
    )
    webhook_wake_dir: Path | None = Field(
        default=None,
        description="Where an accepted webhook leaves the wake note that every worker checks "
        "every 50 ms, and the delivery ids already seen. Instances on one host that share it "
        "all wake on a delivery to any of them. Default: <home>/registry-wake.",
    )
    failed_retry_s: float = Field(
        default=30.0,
        gt=0.0,
        description="A version that failed to load or to answer its smoke prediction is tried "
        "again after this long (the previous version keeps serving meanwhile).",
    )
    registry_timeout_s: float = Field(
        default=3.0,
        gt=0.0,
        description="Reachability probe of the tracking server before each poll; a server that "
        "does not answer within it counts as down (the loaded versions keep serving).",
    )
    model_cache_dir: Path | None = Field(
        default=None,
        description="On-disk cache of downloaded versions and of the last known production "
        "version of each model, used when the registry is unreachable at start. "
        "Default: <home>/model-cache.",
    )
    model_cache_keep: int = Field(
        default=3,
        ge=1,
        description="Versions kept in the cache per model (the production one always stays).",
    )
    micro_batch_models: CommaList = Field(
        default=["ecg-xgboost", "ecg-bilstm"],
        description="Models whose requests go through a micro-batcher: one inference thread per "
        "model, concurrent strips gathered into one `predict_strips` call. Others run in the "
        "thread pool, one call per request.",
    )
    micro_batch_window_ms: float = Field(
        default=0.0,
        ge=0.0,
        le=100.0,
        description="How long the micro-batcher waits for more strips after the first one. "
        "0: no waiting; batches still form from the requests that arrive while the previous "
        "batch computes (under load), and a lone request pays no extra latency.",
    )
    micro_batch_max_strips: int = Field(
        default=32,
        ge=1,
        description="Most strips in one micro-batch.",
    )

    # -- drift monitoring (docs/monitoring.md) -----------------------------------------------
    drift_monitoring: bool = Field(
        default=True,
        description="Compute each strip's input-quality measures and compare a sliding window "
        "of them, of beat confidence and of the class mix with the served version's reference "
        "profile (GET /api/v1/models/{name}/drift, hearteye_drift_* metrics). Per worker.",
    )
    drift_window_s: float = Field(
        default=3600.0,
        gt=0.0,
        description="The drift window: strips classified in the last this many seconds by this "
        "worker (and at most `drift_window_max_strips` of them).",
    )
    drift_window_max_strips: int = Field(
        default=2000, ge=1, description="Most strips a worker's drift window keeps per version."
    )
    drift_min_strips: int = Field(
        default=200,
        ge=1,
        description="No drift signal fires before the window holds this many strips. The PSI "
        "of an undrifted window is about (bins - 1) x (1/strips + 1/reference strips) by "
        "sampling alone: ~0.06 at 200 strips against a full model's 880-strip profile.",
    )
    drift_psi_threshold: float = Field(
        default=0.25,
        gt=0.0,
        description="A signal fires when its population stability index against the reference "
        "exceeds this (0.1: moderate shift, 0.25: significant).",
    )
    drift_update_interval_s: float = Field(
        default=15.0,
        gt=0.0,
        description="How often each worker recomputes its drift gauges for /metrics.",
    )

    # -- request limits ----------------------------------------------------------------------
    min_fs_hz: float = Field(default=100.0, gt=0.0, description="Lowest accepted sampling rate.")
    max_fs_hz: float = Field(default=1000.0, gt=0.0, description="Highest accepted sampling rate.")
    min_strip_s: float = Field(default=2.0, gt=0.0, description="Shortest accepted strip (s).")
    max_strip_s: float = Field(
        default=600.0, gt=0.0, description="Longest accepted strip (s): 10 minutes."
    )
    max_body_bytes: int = Field(
        default=16 * 1024 * 1024,
        ge=1024,
        description="Request bodies above this are refused with 413 before they are parsed "
        "(nginx's client_max_body_size is the same 16 MB).",
    )
    max_batch_strips: int = Field(
        default=32, ge=1, description="Most strips in one /api/v1/predict/batch request."
    )

    # -- recordings (docs/recordings.md) -------------------------------------------------------
    recordings_max_upload_bytes: int = Field(
        default=256 * 1024 * 1024,
        ge=1024,
        description="Largest upload to POST /api/v1/recordings (413 above it, before parsing); "
        "nginx's client_max_body_size for that route is rendered from this variable.",
    )
    recordings_min_duration_s: float = Field(
        default=10.0, gt=0.0, description="Shortest recording accepted (s)."
    )
    recordings_max_duration_s: float = Field(
        default=24 * 3600.0, gt=0.0, description="Longest recording accepted (s): 24 h."
    )
    recordings_s3_bucket: str | None = Field(
        default=None,
        description="S3 bucket for uploaded files and analysis results (credentials: boto3's "
        "AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY). Unset: files under <home>/recordings.",
    )
    recordings_s3_endpoint: str | None = Field(
        default=None,
        description="URL of the S3 server holding recordings_s3_bucket (MinIO, SeaweedFS); "
        "unset: AWS.",
    )
    recordings_worker_threads: int = Field(
        default=1,
        ge=0,
        le=16,
        description="Analysis threads per serving worker; they share the queue (the analyses "
        "table) with every other worker. 0: this worker analyses nothing.",
    )
    recordings_lease_s: float = Field(
        default=120.0,
        gt=1.0,
        description="An analysis whose worker has not renewed its lease for this long (it "
        "crashed) is taken over by another worker.",
    )
    recordings_poll_s: float = Field(
        default=1.0,
        gt=0.0,
        description="How often an idle analysis thread looks for queued work (a new analysis "
        "submitted to the same worker wakes it at once).",
    )

    # -- identity ----------------------------------------------------------------------------
    jwt_secret: SecretStr | None = Field(
        default=None,
        description="HS256 signing secret (>= 32 bytes). Production refuses to start without a "
        "real one; development generates <home>/jwt-secret once.",
    )
    jwt_previous_secrets: SecretList = Field(
        default=[],
        description="Former signing secrets, still accepted to verify tokens they signed (each "
        "token names its key in the `kid` header). Rotate: move the current secret here, set a "
        "new `jwt_secret`, restart; drop the old one after `session_ttl_s` (no token it signed "
        "is still valid then). Same checks as `jwt_secret`.",
    )
    jwt_issuer: str = Field(default="hearteye", min_length=1, description="Token `iss`.")
    jwt_audience: str = Field(default="hearteye-api", min_length=1, description="Token `aud`.")
    jwt_ttl_s: int = Field(default=3600, ge=60, le=86_400, description="Token lifetime (s).")
    session_ttl_s: int = Field(
        default=8 * 3600,
        ge=60,
        le=86_400,
        description="Lifetime (s) of a browser session (POST /api/v1/auth/session): the cookie "
        "and its token expire together; the page then asks to sign in again.",
    )
    session_cookie_secure: Literal["auto", "always", "never"] = Field(
        default="auto",
        description="The session cookie's Secure flag: `auto` sets it when the request came over "
        "TLS (directly, or X-Forwarded-Proto: https from a trusted proxy); `always` behind a "
        "TLS terminator that does not say so; `never` only for plain-HTTP development.",
    )
    user_cache_ttl_s: float = Field(
        default=5.0,
        gt=0.0,
        description="A token's user is looked up again after this long (a disabled account "
        "stops working within it).",
    )
    user_cache_stale_s: float = Field(
        default=300.0,
        gt=0.0,
        description="While the database is down, the last known answer about a user is used "
        "for this long.",
    )
    signin_account_max_failures: int = Field(
        default=5,
        ge=1,
        le=1000,
        description="Failed sign-ins of one account (unknown names included) within "
        "`signin_window_s` that lock it for `signin_lockout_s`: every sign-in to it, the right "
        "password included, is then refused with 429 and Retry-After before any password is "
        "hashed. `ml users unlock NAME` clears a lock.",
    )
    signin_client_max_failures: int = Field(
        default=20,
        ge=1,
        le=100_000,
        description="Failed sign-ins from one client address (any account) within "
        "`signin_window_s` that refuse its sign-ins (429) for `signin_lockout_s`.",
    )
    signin_window_s: float = Field(
        default=900.0,
        gt=0.0,
        le=86_400.0,
        description="The window in which failed sign-ins are counted (s).",
    )
    signin_lockout_s: float = Field(
        default=900.0,
        gt=0.0,
        le=86_400.0,
        description="How long a locked account or client stays locked (s). Counts are kept in "
        "the platform database: every worker and replica sees the same.",
    )
    migrate_on_start: bool = Field(
        default=True,
        description="Apply the platform database's migrations at start-up (safe with many "
        "workers). Off: the schema must already be at head (`ml db upgrade`).",
    )

    # -- HTTP --------------------------------------------------------------------------------
    cors_allowed_origins: CommaList = Field(
        default=[], description="Origins allowed by CORS; empty: no CORS headers at all."
    )
    trusted_proxies: CommaList = Field(
        default=["127.0.0.1", "::1"],
        description="Addresses or networks (CIDR) of reverse proxies whose X-Forwarded-For and "
        "X-Request-ID are believed. Compose: add the backend network.",
    )
    fast_path: bool = Field(
        default=True,
        description="Answer well-formed, authorised prediction requests without FastAPI's "
        "per-request routing and dependency solving (same endpoint, same answers; errors take "
        "the ordinary path). See serving/fastpath.py.",
    )
    access_log: bool = Field(
        default=True, description="One JSON line per request on stdout (request id, route, ...)."
    )
    log_level: str = Field(default="INFO", description="Level of the application's log.")

    # -- process (Gunicorn master, Uvicorn workers: serving/gunicorn.conf.py, serving/worker.py) --
    bind: str = Field(
        default="127.0.0.1:8000",
        description="Gunicorn's default address (HOST:PORT or unix:PATH); `--bind` wins.",
    )
    workers: int = Field(
        default=2,
        ge=1,
        le=64,
        validation_alias=AliasChoices("HEARTEYE_WORKERS", "WEB_CONCURRENCY"),
        description="Worker processes (HEARTEYE_WORKERS, else WEB_CONCURRENCY); `--workers` "
        "wins. Each loads its own copy of every model and runs its own registry poller.",
    )
    worker_timeout_s: int = Field(
        default=120,
        ge=1,
        description="A worker silent for longer is restarted; start-up (loading the models) "
        "counts, so keep it above the slowest model load.",
    )
    graceful_timeout_s: int = Field(
        default=30,
        ge=0,
        description="On SIGTERM, requests in flight get this long to finish.",
    )
    gunicorn_log_level: Literal["debug", "info", "warning", "error", "critical"] = Field(
        default="info", description="Level of Gunicorn's own log (the master, worker exits)."
    )
    uvicorn_loop: Literal["auto", "asyncio", "uvloop"] = Field(
        default="auto",
        description="The workers' event loop (auto: uvloop); the benchmark uses asyncio to show "
        "the TCP_NODELAY fix (serving/worker.py).",
    )
    uvicorn_http: Literal["auto", "h11", "httptools"] = Field(
        default="auto", description="The workers' HTTP parser (auto: httptools)."
    )

    @field_validator(
        "models",
        "micro_batch_models",
        "cors_allowed_origins",
        "trusted_proxies",
        "jwt_previous_secrets",
        mode="before",
    )
    @classmethod
    def _split(cls, value: Any) -> Any:
        if isinstance(value, str):
            text = value.strip()
            if text.startswith("["):
                return json.loads(text)
            return [part.strip() for part in text.split(",") if part.strip()]
        return value

    @field_validator("trusted_proxies")
    @classmethod
    def _networks(cls, value: list[str]) -> list[str]:
        for entry in value:
            try:
                ipaddress.ip_network(entry, strict=False)
            except ValueError:
                raise ValueError(
                    f"trusted_proxies: {entry!r} is not an IP address or network (CIDR)"
                ) from None
        return value

    @model_validator(mode="after")
    def _no_placeholder_secrets_in_production(self) -> ServingSettings:
        refuse_placeholder_secrets(self)  # the database URLs' passwords (the JWT: at start-up)
        return self

    @model_validator(mode="after")
    def _consistent(self) -> ServingSettings:
        if self.default_model not in self.models:
            raise ValueError(
                f"default_model {self.default_model!r} is not one of the served models "
                f"{self.models} (HEARTEYE_DEFAULT_MODEL / HEARTEYE_MODELS)"
            )
        if len(set(self.models)) != len(self.models):
            raise ValueError(f"models lists a name twice: {self.models}")
        if self.min_fs_hz >= self.max_fs_hz:
            raise ValueError("min_fs_hz must be below max_fs_hz")
        if self.recordings_min_duration_s >= self.recordings_max_duration_s:
            raise ValueError("recordings_min_duration_s must be below recordings_max_duration_s")
        if self.min_strip_s >= self.max_strip_s:
            raise ValueError("min_strip_s must be below max_strip_s")
        return self

    @property
    def recordings_dir(self) -> Path:
        """Uploaded files and results when no S3 bucket is configured."""
        return self.home / "recordings"

    @property
    def recordings_cache_dir(self) -> Path:
        """This worker's decoded copies of recordings (rebuilt from the blob store when missing)."""
        return self.home / "recordings-cache"

    @property
    def registry_poll_interval_s(self) -> float:
        """The effective polling interval: the fallback rate when webhooks wake the workers."""
        return self.webhook_poll_interval_s if self.webhook_secret else self.poll_interval_s

    @property
    def webhook_wake_path(self) -> Path:
        """The effective wake directory."""
        return self.webhook_wake_dir or self.home / "registry-wake"

    @property
    def model_cache_path(self) -> Path:
        """The effective model cache directory."""
        return self.model_cache_dir or self.home / "model-cache"

    def jwt_secret_value(self) -> str | None:
        return self.jwt_secret.get_secret_value() if self.jwt_secret is not None else None

    def jwt_previous_secret_values(self) -> list[str]:
        return [secret.get_secret_value() for secret in self.jwt_previous_secrets]

    def signin_policy(self) -> ThrottlePolicy:
        """The sign-in throttle's limits."""
        return ThrottlePolicy(
            account_max_failures=self.signin_account_max_failures,
            client_max_failures=self.signin_client_max_failures,
            window_s=self.signin_window_s,
            lockout_s=self.signin_lockout_s,
        )
