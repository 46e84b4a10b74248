"""``GET /api/v1/audit`` (admin): the prediction audit trail, newest first, with filters."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, HTTPException, Query, status
from pydantic import BeforeValidator

from hearteye_platform.audit import query_audit
from serving.deps import AUTH_ERRORS, AdminUser, RuntimeDep
from serving.schemas import AuditEntryOut, AuditResponse, ErrorOut

router = APIRouter(prefix="/api/v1", tags=["audit"], responses=AUTH_ERRORS)


def _iso_8601(value: object) -> object:
    """Refuse numbers, which pydantic would read as Unix times: the documented format (and the
    only one the answer uses) is an ISO 8601 date-time."""
    if isinstance(value, str | int | float) and not isinstance(value, bool):
        try:
            float(value)
        except ValueError:
            return value
        raise ValueError(
            f"{value!r} is a number: give an ISO 8601 date-time with a timezone, "
            "e.g. 2026-12-05T08:00:00Z"
        )
    return value


IsoDateTime = Annotated[datetime, BeforeValidator(_iso_8601)]


@router.get(
    "/audit",
    response_model=AuditResponse,
    responses={
        403: {"model": ErrorOut, "description": "Only admins read the audit trail"},
        422: {"description": "A bad filter: its name and what is wrong"},
        503: {"model": ErrorOut, "description": "The platform database is not ready"},
    },
)
def read_audit(
    user: AdminUser,
    runtime: RuntimeDep,
    since: Annotated[
        IsoDateTime | None, Query(description="Inclusive lower bound, with a timezone.")
    ] = None,
    until: Annotated[
        IsoDateTime | None, Query(description="Exclusive upper bound, with a timezone.")
    ] = None,
    username: Annotated[str | None, Query(max_length=64)] = None,
    model_name: Annotated[str | None, Query(max_length=128)] = None,
    model_version: Annotated[str | None, Query(max_length=32)] = None,
    limit: Annotated[int, Query(ge=1, le=10_000)] = 100,
) -> AuditResponse:
    """Records of prediction requests, answered or refused (sync: it queries the database)."""
    if runtime.sessions is None:
        raise HTTPException(status.HTTP_503_SERVICE_UNAVAILABLE, "the database is not ready")
    with runtime.sessions() as session:
        records = query_audit(
            session,
            since=since,
            until=until,
            username=username,
            model_name=model_name,
            model_version=model_version,
            limit=limit,
        )
    out = [AuditEntryOut(**record.model_dump()) for record in records]
    return AuditResponse(count=len(out), records=out)
