"""``POST /api/v1/hooks/mlflow-registry``: MLflow's registry webhook wakes every worker at once.

No bearer token: the MLflow server authenticates itself by the HMAC signature of each delivery
(shared secret ``HEARTEYE_WEBHOOK_SECRET``, checked in :mod:`serving.webhooks`). An accepted
delivery that concerns a served model's alias replaces that model's wake note; every worker
sharing the wake directory (all of this instance's, and other instances' on the host that share
it) resolves the model's alias within ``WAKE_CHECK_S`` and loads the new version. Nothing else is trusted from the body:
the workers read the alias from the registry itself.
"""

from __future__ import annotations

import logging
import time
from typing import Any

from fastapi import APIRouter, Request, status
from fastapi.responses import JSONResponse

from hearteye.registry.webhooks import ALIAS_EVENTS, DELIVERY_ID_HEADER, WEBHOOK_PATH
from serving.deps import runtime_of
from serving.schemas import HookAnswer
from serving.webhooks import MAX_BODY_BYTES, WebhookRefusedError, verify_delivery

logger = logging.getLogger("serving.hooks")

router = APIRouter(tags=["hooks"])

RESPONSES: dict[int | str, dict[str, Any]] = {
    200: {"model": HookAnswer, "description": "Verified, not about a served alias"},
    400: {"description": "Malformed delivery (timestamp, delivery id or body)"},
    401: {"description": "Unsigned, wrongly signed or stale delivery"},
    404: {"description": "Registry webhooks are off here (no HEARTEYE_WEBHOOK_SECRET)"},
    409: {"description": "This delivery id was accepted before (a replay)"},
    413: {"description": "Body too large for a registry event"},
}


@router.post(
    WEBHOOK_PATH,
    response_model=HookAnswer,
    status_code=status.HTTP_202_ACCEPTED,
    responses=RESPONSES,
)
async def mlflow_registry(request: Request) -> JSONResponse:
    """Receive a signed MLflow registry event; a move of a served model's alias makes every
    worker reload it now (MLflow's `model_version_alias.created` / `.deleted`)."""
    runtime = runtime_of(request)
    metrics = runtime.metrics
    try:
        if runtime.webhook_secret is None or runtime.wake is None or runtime.deliveries is None:
            raise WebhookRefusedError(
                404, "disabled", "registry webhooks are off here: HEARTEYE_WEBHOOK_SECRET is unset"
            )
        body = await request.body()
        if len(body) > MAX_BODY_BYTES:
            raise WebhookRefusedError(
                413, "malformed", f"a registry event is under {MAX_BODY_BYTES} bytes"
            )
        headers = {k.lower(): v for k, v in request.headers.items() if k.lower().startswith("x-")}
        delivery = verify_delivery(
            headers,
            body,
            runtime.webhook_secret,
            now=time.time(),
            tolerance_s=runtime.settings.webhook_tolerance_s,
        )
        if not runtime.deliveries.claim(delivery.delivery_id):
            raise WebhookRefusedError(
                409, "replayed", f"{DELIVERY_ID_HEADER} {delivery.delivery_id} was accepted before"
            )
    except WebhookRefusedError as exc:
        metrics.webhooks.labels(exc.outcome).inc()
        logger.warning("registry webhook refused (%s): %s", exc.outcome, exc)
        return JSONResponse({"detail": str(exc)}, status_code=exc.status)

    settings = runtime.settings
    model = str(delivery.data.get("name", ""))
    alias = str(delivery.data.get("alias", ""))
    version = delivery.data.get("version")
    detail = None
    if delivery.event not in ALIAS_EVENTS or model not in settings.models:
        detail = f"not an alias event of a served model ({', '.join(settings.models)})"
    elif alias != settings.model_alias:
        detail = f"alias {alias!r} is not the served alias {settings.model_alias!r}"
    answer = HookAnswer(
        status="accepted" if detail is None else "ignored",
        delivery_id=delivery.delivery_id,
        event=delivery.event,
        model=model or None,
        version=None if version is None else str(version),
        detail=detail,
    )
    metrics.webhooks.labels(answer.status).inc()
    if answer.status == "ignored":
        logger.info("registry webhook %s ignored: %s", delivery.delivery_id, answer.detail)
        return JSONResponse(answer.model_dump(), status_code=200)
    runtime.wake.notify(model, {"delivery_id": delivery.delivery_id, "event": delivery.event})
    logger.info(
        "registry webhook %s: %s %s@%s -> %s, waking every worker",
        delivery.delivery_id,
        delivery.event,
        model,
        alias,
        version,
    )
    return JSONResponse(answer.model_dump(), status_code=202)
