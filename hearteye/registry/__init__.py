"""The registry lifecycle: listing, the promotion gate, promote/rollback, the promotion history.

"Production" is the ``production`` alias of a registered model (never registry stages).
Typical use::

    from hearteye.registry import connect, get_production_version, get_history, promote

    registry = connect()  # MLFLOW_TRACKING_URI or the embedded store
    get_production_version(registry, "ecg-xgboost")  # "3" or None
    promote(registry, "ecg-xgboost", "4", reason="retrained on fixed labels")
    get_history(registry, "ecg-xgboost")  # newest first

Importing this package imports no MLflow; the functions do, when called.
"""

from hearteye.registry.catalog import (
    ModelInfo,
    VersionInfo,
    get_model,
    get_production,
    get_production_version,
    get_version,
    list_models,
    production_versions,
)
from hearteye.registry.connection import PRODUCTION_ALIAS, Registry, connect
from hearteye.registry.errors import (
    ModelNotFoundError,
    NothingToRollBackError,
    PromotionConflictError,
    RegistryError,
    VersionNotFoundError,
)
from hearteye.registry.gate import (
    Check,
    GateRefusedError,
    GateResult,
    artifact_check,
    evaluate_gate,
    metric_checks,
    protocol_check,
)
from hearteye.registry.history import AUDIT_EXPERIMENT, PromotionEvent, get_history
from hearteye.registry.lifecycle import (
    Plan,
    ensure_can_change,
    plan_promotion,
    plan_rollback,
    production_stack,
    promote,
    rollback,
    rollback_target,
)
from hearteye.registry.metrics import KEY_METRICS, METRIC_TAGS

__all__ = [
    "AUDIT_EXPERIMENT",
    "KEY_METRICS",
    "METRIC_TAGS",
    "PRODUCTION_ALIAS",
    "Check",
    "GateRefusedError",
    "GateResult",
    "ModelInfo",
    "ModelNotFoundError",
    "NothingToRollBackError",
    "Plan",
    "PromotionConflictError",
    "PromotionEvent",
    "Registry",
    "RegistryError",
    "VersionInfo",
    "VersionNotFoundError",
    "artifact_check",
    "connect",
    "ensure_can_change",
    "evaluate_gate",
    "get_history",
    "get_model",
    "get_production",
    "get_production_version",
    "get_version",
    "list_models",
    "metric_checks",
    "plan_promotion",
    "plan_rollback",
    "production_stack",
    "production_versions",
    "promote",
    "protocol_check",
    "rollback",
    "rollback_target",
]
