"""Registry webhooks: the MLflow server (>= 3.3) calls serving when a production alias moves.

MLflow delivers ``model_version_alias.created`` (set or moved) and ``.deleted`` events to the
registered URL with three headers (``mlflow/webhooks/constants.py``) and a Standard-Webhooks-style
signature (``mlflow/webhooks/delivery.py``)::

    X-MLflow-Delivery-Id: <uuid4>     X-MLflow-Timestamp: <unix seconds>
    X-MLflow-Signature: v1,<base64(HMAC-SHA256(secret, "<id>.<timestamp>.<body>"))>

:func:`signature` is that scheme, once: serving verifies deliveries with it. Registering is an
MLflow admin's operation (``ml webhook register``); only an MLflow *server* delivers webhooks, the
embedded store never does. Importing this module imports no MLflow.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Literal

from hearteye.registry.connection import Registry, mlflow_errors
from hearteye.registry.errors import RegistryError

if TYPE_CHECKING:
    from mlflow.entities.webhook import Webhook

#: The name HeartEye's webhook has in MLflow; ``register_webhook`` updates it in place.
WEBHOOK_NAME = "hearteye-serving"
#: Serving's route for MLflow's deliveries.
WEBHOOK_PATH = "/api/v1/hooks/mlflow-registry"
#: The events serving needs: the alias it follows was set, moved or removed.
AliasEvent = Literal["model_version_alias.created", "model_version_alias.deleted"]
ALIAS_EVENTS: tuple[AliasEvent, AliasEvent] = (
    "model_version_alias.created",
    "model_version_alias.deleted",
)
SIGNATURE_HEADER = "X-MLflow-Signature"
TIMESTAMP_HEADER = "X-MLflow-Timestamp"
DELIVERY_ID_HEADER = "X-MLflow-Delivery-Id"
SIGNATURE_VERSION = "v1"


def signature(secret: str, delivery_id: str, timestamp: str, body: bytes) -> str:
    """The ``X-MLflow-Signature`` value MLflow sends for this delivery (``v1,<base64>``)."""
    signed = f"{delivery_id}.{timestamp}.".encode() + body
    digest = hmac.new(secret.encode(), signed, hashlib.sha256).digest()
    return f"{SIGNATURE_VERSION},{base64.b64encode(digest).decode()}"


@dataclass(frozen=True)
class WebhookInfo:
    """A webhook as MLflow stores it (MLflow never returns the secret)."""

    id: str
    name: str
    url: str
    events: tuple[str, ...]
    status: str
    description: str
    created_at: str | None
    updated_at: str | None

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "name": self.name,
            "url": self.url,
            "events": list(self.events),
            "status": self.status,
            "description": self.description,
            "created_at": self.created_at,
            "updated_at": self.updated_at,
        }


@dataclass(frozen=True)
class DeliveryTest:
    """What MLflow's test delivery (an example alias event, signed) got back."""

    success: bool
    status: int | None
    body: str
    error: str | None


def list_webhooks(registry: Registry) -> list[WebhookInfo]:
    """Every webhook of the registry, all pages."""
    found: list[WebhookInfo] = []
    token: str | None = None
    with mlflow_errors(registry.target, "list webhooks (MLflow admins only)"):
        while True:
            page = registry.client.list_webhooks(max_results=100, page_token=token)
            found += [_info(w) for w in page]
            token = page.token
            if not token:
                return found


def register_webhook(
    registry: Registry, url: str, secret: str, *, name: str = WEBHOOK_NAME
) -> tuple[WebhookInfo, bool]:
    """Create the webhook ``name`` for the alias events, or update it (URL, events, secret, and
    back to ACTIVE). Returns it and whether it was created. Idempotent: run it at every start."""
    from mlflow.exceptions import MlflowException

    if not secret:
        raise RegistryError("a webhook without a secret would be unsigned: set a secret")
    description = "HeartEye serving: reload the production alias on every worker at once"
    existing = next((w for w in list_webhooks(registry) if w.name == name), None)
    client = registry.client
    try:
        with mlflow_errors(registry.target, "register a webhook (MLflow admins only)"):
            if existing is None:
                created = client.create_webhook(
                    name=name,
                    url=url,
                    events=list(ALIAS_EVENTS),
                    description=description,
                    secret=secret,
                    status="ACTIVE",
                )
                return _info(created), True
            updated = client.update_webhook(
                existing.id,
                url=url,
                events=list(ALIAS_EVENTS),
                description=description,
                secret=secret,
                status="ACTIVE",
            )
            return _info(updated), False
    except MlflowException as exc:
        raise RegistryError(_refusal(url, exc)) from exc


def test_webhook(registry: Registry, webhook_id: str) -> DeliveryTest:
    """Ask the MLflow server to send the webhook a signed example event, now."""
    with mlflow_errors(registry.target, "test a webhook (MLflow admins only)"):
        result = registry.client.test_webhook(webhook_id, event=ALIAS_EVENTS[0])
    return DeliveryTest(
        success=bool(result.success),
        status=result.response_status,
        body=(result.response_body or "")[:500],
        error=result.error_message,
    )


test_webhook.__test__ = False  # type: ignore[attr-defined]  # not a pytest test


def _refusal(url: str, exc: Exception) -> str:
    message = str(getattr(exc, "message", exc)).strip().splitlines()[0]
    hint = ""
    if "scheme" in message:
        hint = (
            " (the MLflow server accepts https only unless it runs with "
            "MLFLOW_WEBHOOK_ALLOWED_SCHEMES=http,https)"
        )
    elif "non-public" in message:
        hint = (
            " (the MLflow server refuses private addresses unless it runs with "
            "MLFLOW_WEBHOOK_ALLOW_PRIVATE_IPS=true)"
        )
    return f"MLflow refused the webhook URL {url}: {message}{hint}"


def _info(webhook: Webhook) -> WebhookInfo:
    return WebhookInfo(
        id=str(webhook.webhook_id),
        name=str(webhook.name),
        url=str(webhook.url),
        events=tuple(f"{e.entity.value}.{e.action.value}" for e in webhook.events),
        status=str(webhook.status),
        description=str(webhook.description or ""),
        created_at=_iso(webhook.creation_timestamp),
        updated_at=_iso(webhook.last_updated_timestamp),
    )


def _iso(millis: int | None) -> str | None:
    if not millis:
        return None
    return datetime.fromtimestamp(millis / 1000, UTC).isoformat(timespec="seconds")
