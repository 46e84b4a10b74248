"""How errors become responses: 4xx for what the client sent (naming the field), 503 for outages.

Validation errors keep FastAPI's shape (``{"detail": [{"loc", "msg", "type"}]}``) but never echo
the input back (a rejected 10-minute strip would otherwise be returned whole).
"""

from __future__ import annotations

import logging

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse

from hearteye.ecgfiles import RecordingFileError
from hearteye_platform.audit import AuditQueryError
from hearteye_platform.db import DatabaseUnavailableError
from hearteye_platform.recordings import AnalysisNotFoundError, RecordingNotFoundError
from serving.inference import InputError
from serving.recording_service import UploadTooLargeError
from serving.store import ModelUnavailableError, UnknownModelError

logger = logging.getLogger("serving.errors")


def _validation_detail(exc: RequestValidationError) -> list[dict[str, object]]:
    detail = []
    for error in exc.errors():
        loc = list(error.get("loc", ()))
        msg = str(error.get("msg", "invalid"))
        ctx = error.get("ctx") or {}
        if error.get("type") == "json_invalid" and "error" in ctx:
            msg = f"{msg}: {ctx['error']}"
        detail.append({"type": error.get("type", "value_error"), "loc": loc, "msg": msg})
    return detail


def install_error_handlers(app: FastAPI) -> None:
    """Register the handlers on ``app``."""

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        return JSONResponse({"detail": _validation_detail(exc)}, status_code=422)

    @app.exception_handler(InputError)
    async def _input(request: Request, exc: InputError) -> JSONResponse:
        return JSONResponse({"detail": exc.detail()}, status_code=422)

    @app.exception_handler(UnknownModelError)
    async def _unknown_model(request: Request, exc: UnknownModelError) -> JSONResponse:
        detail = [{"type": "value_error", "loc": ["body", "model"], "msg": str(exc)}]
        return JSONResponse({"detail": detail}, status_code=422)

    @app.exception_handler(ModelUnavailableError)
    async def _unavailable(request: Request, exc: ModelUnavailableError) -> JSONResponse:
        return JSONResponse({"detail": str(exc)}, status_code=503, headers={"Retry-After": "5"})

    @app.exception_handler(DatabaseUnavailableError)
    async def _database(request: Request, exc: DatabaseUnavailableError) -> JSONResponse:
        logger.warning("platform database unavailable: %s", exc)
        return JSONResponse(
            {"detail": "the platform database is unavailable; try again shortly"},
            status_code=503,
            headers={"Retry-After": "5"},
        )

    @app.exception_handler(AuditQueryError)
    async def _audit_query(request: Request, exc: AuditQueryError) -> JSONResponse:
        detail = [{"type": "value_error", "loc": ["query"], "msg": str(exc)}]
        return JSONResponse({"detail": detail}, status_code=422)

    @app.exception_handler(RecordingFileError)
    async def _recording_file(request: Request, exc: RecordingFileError) -> JSONResponse:
        code = 413 if isinstance(exc, UploadTooLargeError) else 400
        return JSONResponse({"detail": str(exc)}, status_code=code)

    @app.exception_handler(RecordingNotFoundError)
    async def _no_recording(request: Request, exc: RecordingNotFoundError) -> JSONResponse:
        return JSONResponse({"detail": str(exc)}, status_code=404)

    @app.exception_handler(AnalysisNotFoundError)
    async def _no_analysis(request: Request, exc: AnalysisNotFoundError) -> JSONResponse:
        return JSONResponse({"detail": str(exc)}, status_code=404)
