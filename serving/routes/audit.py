"""``GET /api/v1/audit`` (admin): the prediction audit trail, newest first, with filters."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, HTTPException, Query, status

from hearteye_platform.audit import query_audit
from serving.deps import AdminUser, RuntimeDep
from serving.schemas import AuditEntryOut, AuditResponse

router = APIRouter(prefix="/api/v1", tags=["audit"])


@router.get(
    "/audit",
    response_model=AuditResponse,
    responses={403: {"description": "Only admins read the audit trail"}},
)
def read_audit(
    user: AdminUser,
    runtime: RuntimeDep,
    since: Annotated[
        datetime | None, Query(description="Inclusive lower bound, with a timezone.")
    ] = None,
    until: Annotated[
        datetime | None, Query(description="Exclusive upper bound, with a timezone.")
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
