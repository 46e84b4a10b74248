"""Probes and metrics: ``/live``, ``/ready``, ``/health``, ``/metrics`` (no token needed).

* ``/live``: the process answers (the stack launcher and compose wait on it).
* ``/ready``: 503 until the default model has a loaded version.
* ``/health``: ``healthy`` / ``degraded`` / ``unhealthy`` with each service's state. Unhealthy
  (503): the default model has no version. Degraded (200): the registry or the database is
  unreachable, a model is served from the on-disk cache or not at all, the last swap failed, or
  the disk is nearly full / not writable.
* ``/metrics``: Prometheus exposition (the whole Gunicorn instance; see ``serving.metrics``).
"""

from __future__ import annotations

import os
import shutil
import time
from datetime import UTC, datetime
from typing import Literal

from fastapi import APIRouter, Response
from fastapi.responses import JSONResponse
from sqlalchemy import text

import hearteye
from hearteye.errors import first_line
from serving.deps import RuntimeDep
from serving.registry_source import redact_uri
from serving.runtime import Runtime
from serving.schemas import HealthResponse, ServiceHealth

router = APIRouter(tags=["probes"])

#: Free space under which the filesystem counts as degraded.
MIN_FREE_BYTES = 200 * 1024 * 1024
#: The database probe's answer is reused for this long (a probe may take the connect timeout).
DATABASE_PROBE_TTL_S = 5.0


@router.get("/live")
async def live() -> dict[str, str]:
    """The process is up and answering."""
    return {"status": "alive"}


@router.get("/ready", responses={503: {"description": "The default model is not loaded yet"}})
async def ready(runtime: RuntimeDep) -> JSONResponse:
    """Ready once the default model has a loaded version."""
    store = runtime.store
    default = runtime.settings.default_model
    if store is None or not store.ready():
        return JSONResponse({"status": "not ready", "model": default}, status_code=503)
    loaded = store.get(default)
    return JSONResponse({"status": "ready", "model": default, "version": loaded.version})


@router.get(
    "/health",
    response_model=HealthResponse,
    responses={503: {"description": "Unhealthy: the default model has no version"}},
)
def health(runtime: RuntimeDep, response: Response) -> HealthResponse:
    """Overall status and each service's (sync: it may probe the database)."""
    services = {
        "registry": _registry(runtime),
        "database": _database(runtime),
        "models": _models(runtime),
        "filesystem": _filesystem(runtime),
    }
    store = runtime.store
    status: Literal["healthy", "degraded", "unhealthy"]
    if store is None or not store.ready():
        status = "unhealthy"
    elif all(s.status == "up" for s in services.values()):
        status = "healthy"
    else:
        status = "degraded"
    if status == "unhealthy":
        response.status_code = 503
    return HealthResponse(
        status=status,
        timestamp=datetime.now(UTC),
        version=hearteye.__version__,
        uptime=round(runtime.uptime_s, 1),
        services=services,
    )


@router.get("/metrics", include_in_schema=False)
async def metrics(runtime: RuntimeDep) -> Response:
    """Prometheus text exposition."""
    audit = runtime.audit
    if audit is not None:
        stats = audit.stats()
        runtime.metrics.audit_spool_files.set(stats.spool_files)
        runtime.metrics.audit_database_up.set(1 if stats.database_available else 0)
    data, content_type = runtime.metrics.render()
    return Response(content=data, media_type=content_type)


def _registry(runtime: Runtime) -> ServiceHealth:
    store = runtime.store
    if store is None:
        return ServiceHealth(status="down", detail="not started")
    if store.registry_error is not None:
        return ServiceHealth(status="down", detail=store.registry_error)
    return ServiceHealth(status="up", detail=redact_uri(store.source.uri))


def _database(runtime: Runtime) -> ServiceHealth:
    now = time.monotonic()
    if runtime.engine is None:
        return ServiceHealth(status="down", detail=runtime.database_error or "not started")
    if now - runtime.database_checked_at > DATABASE_PROBE_TTL_S:
        try:
            with runtime.engine.connect() as connection:
                connection.execute(text("SELECT 1"))
            runtime.database_error = None
        except Exception as exc:
            runtime.database_error = first_line(exc)
        runtime.database_checked_at = now
    spooled = runtime.audit.stats().spool_files if runtime.audit is not None else 0
    if runtime.database_error is not None:
        detail = f"{runtime.database_error}; {spooled} audit records spooled on disk"
        return ServiceHealth(status="down", detail=detail)
    if spooled:
        return ServiceHealth(status="degraded", detail=f"{spooled} audit records to replay")
    return ServiceHealth(status="up")


def _models(runtime: Runtime) -> ServiceHealth:
    store = runtime.store
    if store is None:
        return ServiceHealth(status="down", detail="not started")
    reasons = store.degraded_reasons()
    loaded = [
        f"{s.name} v{s.current.version}" for s in store.slots.values() if s.current is not None
    ]
    if not store.ready():
        return ServiceHealth(status="down", detail="; ".join(reasons))
    if reasons:
        return ServiceHealth(status="degraded", detail="; ".join(reasons))
    return ServiceHealth(status="up", detail=", ".join(loaded))


def _filesystem(runtime: Runtime) -> ServiceHealth:
    settings = runtime.settings
    problems = []
    for directory in (settings.model_cache_path, settings.audit_spool_dir):
        if not directory.is_dir() or not os.access(directory, os.W_OK):
            problems.append(f"{directory} is not writable")
    try:
        free = shutil.disk_usage(settings.home).free
    except OSError as exc:
        return ServiceHealth(status="down", detail=str(exc))
    if free < MIN_FREE_BYTES:
        problems.append(f"only {free // (1024 * 1024)} MiB free under {settings.home}")
    if problems:
        return ServiceHealth(status="degraded", detail="; ".join(problems))
    return ServiceHealth(status="up", detail=f"{free // (1024 * 1024)} MiB free")
