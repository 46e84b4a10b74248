"""The prediction API: ``create_app(settings) -> FastAPI``.

Nothing happens at import or in ``create_app`` beyond building routes and middleware: the
lifespan (run in each Gunicorn worker after the fork) checks the signing secret, migrates the
platform database, starts the audit writer, loads the production versions and starts the poller.
Run it with ``gunicorn -c serving/gunicorn.conf.py "serving.app:create_app()"`` (``ml serve``).
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI
from fastapi.middleware.cors import CORSMiddleware
from fastapi.telemetry import TelemetryConfig
from starlette.concurrency import run_in_threadpool

import hearteye
from hearteye_platform.audit import AuditWriter
from hearteye_platform.auth_tokens import check_secret, resolve_signing_keys
from hearteye_platform.db import (
    DatabaseUnavailableError,
    create_db_engine,
    create_session_factory,
    database_config,
    upgrade_database,
)
from hearteye_platform.identity import ActiveUserCache, UserStore
from hearteye_platform.recordings import RecordingStore
from hearteye_platform.sessions import RevokedTokens
from hearteye_platform.signin_throttle import SignInThrottler
from serving.analysis_worker import AnalysisWorkers
from serving.batcher import MicroBatcher
from serving.context import ClientResolver
from serving.docs_ui import install_docs
from serving.drift import DriftMonitor
from serving.errors import install_error_handlers
from serving.fastpath import PredictFastPath, fast_routes
from serving.logs import configure_logging
from serving.metrics import ServingMetrics
from serving.middleware import RequestMiddleware
from serving.openapi import install_openapi
from serving.recording_service import RecordingService, make_blob_store
from serving.routes import (
    analyses,
    audit,
    auth,
    health,
    hooks,
    models,
    oip,
    predict,
    recordings,
    session,
)
from serving.runtime import Runtime
from serving.settings import ServingSettings
from serving.signal_json import warm_up as warm_up_signal_parser
from serving.store import ModelStore
from serving.webhooks import DeliveryLedger, WakeNotes

logger = logging.getLogger("serving.app")

OPENAPI_URL = "/api/openapi.json"

DESCRIPTION = """\
Beat-by-beat AAMI classification (N, S, V, F, Q) of single-lead ECG strips by the **production**
version of each registered HeartEye model. Get a token from `POST /api/v1/auth/token` (OAuth2
password flow), then send it as `Authorization: Bearer <token>`. The same models answer the
**Open Inference Protocol** (KServe V2 REST) under `/v2` (inputs `signal`, `fs`, `r_peaks`;
outputs `sample`, `label`, `probabilities`), with the same token. The clinicians' page at `/`
signs in with `POST /api/v1/auth/session` instead: an HttpOnly session cookie, and an
`X-CSRF-Token` header on every unsafe request.
"""


#: FastAPI's native OpenTelemetry hooks, off: the service exports its own Prometheus metrics and
#: JSON logs, and the hooks cost ~0.1 ms of event-loop CPU per request even with no provider.
NO_TELEMETRY: TelemetryConfig = {
    "tracing": False,
    "metrics": False,
    "logs": False,
    "operation_spans": False,
}


def create_app(settings: ServingSettings | None = None) -> FastAPI:
    """The app; ``settings`` default to the environment (``HEARTEYE_*``)."""
    settings = settings or ServingSettings()
    configure_logging(settings.log_level)
    runtime = Runtime(
        settings=settings,
        metrics=ServingMetrics(),
        clients=ClientResolver(settings.trusted_proxies),
    )
    app = FastAPI(
        title="HeartEye API",
        version=hearteye.__version__,
        description=DESCRIPTION,
        docs_url=None,  # serving/docs_ui.py: the same pages without a CDN
        redoc_url=None,
        openapi_url=OPENAPI_URL,
        lifespan=_lifespan,
        telemetry=NO_TELEMETRY,
    )
    app.state.runtime = runtime
    install_openapi(app, settings)
    install_error_handlers(app)
    install_docs(app, title=app.title, openapi_url=OPENAPI_URL)
    for module in (auth, session, predict, oip, models, audit, hooks, recordings, analyses, health):
        app.include_router(module.router)
    if settings.fast_path:  # innermost of ours: inside CORS and the request middleware
        app.add_middleware(
            PredictFastPath,
            routes=fast_routes(predict.router.routes),
            handlers=app.exception_handlers,
        )
    if settings.cors_allowed_origins:
        app.add_middleware(
            CORSMiddleware,
            allow_origins=settings.cors_allowed_origins,
            allow_methods=["GET", "POST", "DELETE"],
            allow_headers=["Authorization", "Content-Type", "X-Request-ID"],
            expose_headers=["X-Request-ID"],
        )
    app.add_middleware(RequestMiddleware, runtime=runtime)  # outermost: sees every answer
    return app


@asynccontextmanager
async def _lifespan(app: FastAPI) -> AsyncIterator[None]:
    runtime = app.state.runtime
    assert isinstance(runtime, Runtime)
    try:
        await run_in_threadpool(start_runtime, runtime)
    except BaseException:
        await run_in_threadpool(stop_runtime, runtime)
        raise
    try:
        yield
    finally:
        await run_in_threadpool(stop_runtime, runtime)


def start_runtime(runtime: Runtime) -> None:
    """Everything a worker needs before it answers; raises to refuse to start."""
    settings = runtime.settings
    runtime.jwt_keys = resolve_signing_keys(
        settings.jwt_secret_value(),
        settings.jwt_previous_secret_values(),
        env=settings.env,
        home=settings.home,
    )
    settings.home.mkdir(parents=True, exist_ok=True)
    settings.model_cache_path.mkdir(parents=True, exist_ok=True)
    if settings.fast_path:
        warm_up_signal_parser()  # compiled now (or loaded from numba's cache), not on a request
    _start_webhooks(runtime)
    _start_database(runtime)
    store = ModelStore(settings, runtime.metrics, wake=runtime.wake)
    runtime.store = store
    for name in settings.micro_batch_models:
        if name in settings.models:
            runtime.batchers[name] = MicroBatcher(
                name,
                settings.micro_batch_window_ms / 1000.0,
                settings.micro_batch_max_strips,
                on_batch=runtime.metrics.micro_batch.labels(name).observe,
            )
    store.start()
    if settings.drift_monitoring:
        runtime.drift = DriftMonitor(settings, runtime.metrics)
        runtime.drift.start(lambda: [s.current for s in store.slots.values() if s.current])
    runtime.analysis_workers = AnalysisWorkers(runtime, runtime.require_recordings())
    runtime.analysis_workers.start()
    logger.info(
        "serving %s (default %s, alias %s, poll every %.1f s%s) from %s",
        ", ".join(settings.models),
        settings.default_model,
        settings.model_alias,
        settings.registry_poll_interval_s,
        ", woken by registry webhooks" if runtime.wake is not None else "",
        store.source.target.uri,
    )


def _start_webhooks(runtime: Runtime) -> None:
    """With a webhook secret: the wake note every worker watches and the shared replay ledger."""
    settings = runtime.settings
    secret = settings.webhook_secret_value()
    if secret is None:
        return
    runtime.webhook_secret = check_secret(
        secret, variable="HEARTEYE_WEBHOOK_SECRET", production=settings.env == "production"
    )
    directory = settings.webhook_wake_path
    directory.mkdir(parents=True, exist_ok=True)
    runtime.wake = WakeNotes(directory, settings.models)
    runtime.deliveries = DeliveryLedger(
        directory / "deliveries", keep_s=2 * settings.webhook_tolerance_s + 60.0
    )


def _start_database(runtime: Runtime) -> None:
    settings = runtime.settings
    config = database_config(settings)
    if settings.migrate_on_start:
        try:
            upgrade_database(config.owner_url, app_role=config.app_role)
        except DatabaseUnavailableError as exc:
            # Serve anyway: audit records are spooled on disk until the database returns.
            runtime.database_error = str(exc)
            logger.error("start-up migration skipped: %s", exc)
    engine = create_db_engine(
        config.url, pool_size=config.pool_size, max_overflow=config.max_overflow
    )
    runtime.engine = engine
    runtime.sessions = create_session_factory(engine)
    runtime.users = UserStore(runtime.sessions)
    runtime.revoked = RevokedTokens(runtime.sessions)
    runtime.signin = SignInThrottler(runtime.sessions, settings.signin_policy())
    runtime.active_users = ActiveUserCache(
        runtime.users, ttl_s=settings.user_cache_ttl_s, stale_ttl_s=settings.user_cache_stale_s
    )
    runtime.audit = AuditWriter(engine, settings.audit_spool_dir)
    runtime.audit.start()
    runtime.recordings = RecordingService(
        settings, RecordingStore(runtime.sessions), make_blob_store(settings)
    )


def stop_runtime(runtime: Runtime) -> None:
    """Stop the analyses and the poller, answer what the batchers hold, drain the audit queue,
    close the pool."""
    if runtime.analysis_workers is not None:
        runtime.analysis_workers.stop()
    if runtime.store is not None:
        runtime.store.stop()
    if runtime.drift is not None:
        runtime.drift.stop()
    for batcher in runtime.batchers.values():
        batcher.close()
    runtime.batchers.clear()
    if runtime.audit is not None:
        runtime.audit.close()
    if runtime.engine is not None:
        runtime.engine.dispose()
