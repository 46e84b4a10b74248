"""Where MLflow tracking and the model registry live.

``MLFLOW_TRACKING_URI`` (MLflow's own variable) wins when set: a remote ``mlflow server``, with
basic-auth credentials in ``MLFLOW_TRACKING_USERNAME`` / ``MLFLOW_TRACKING_PASSWORD``. Otherwise HeartEye
uses an embedded store under ``HEARTEYE_HOME``: a sqlite database and a local artifact directory.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from hearteye.errors import HeartEyeError
from hearteye.settings import HearteyeSettings

if TYPE_CHECKING:
    from mlflow import MlflowClient


class TrackingError(HeartEyeError):
    """The tracking server is unreachable or refused the request (credentials, permissions)."""


@dataclass(frozen=True)
class TrackingTarget:
    """The effective tracking/registry URI and, for the embedded store, its artifact root."""

    uri: str
    embedded: bool
    artifact_root: Path | None = None

    def artifact_location(self, experiment: str) -> str | None:
        """Artifact location for a new experiment (only the embedded store needs one)."""
        if self.artifact_root is None:
            return None
        return (self.artifact_root / experiment).resolve().as_uri()


def tracking_target(settings: HearteyeSettings) -> TrackingTarget:
    """Resolve the tracking target from the environment and settings; creates nothing.

    A ``sqlite:///`` ``MLFLOW_TRACKING_URI`` is a local store too: its artifacts go beside the
    database file (``artifacts/``), never into MLflow's default ``./mlruns`` in the working
    directory.
    """
    uri = os.environ.get("MLFLOW_TRACKING_URI", "").strip()
    if uri:
        local_db = uri.removeprefix("sqlite:///") if uri.startswith("sqlite:///") else None
        if local_db and local_db != ":memory:":
            return TrackingTarget(
                uri=uri, embedded=False, artifact_root=Path(local_db).resolve().parent / "artifacts"
            )
        return TrackingTarget(uri=uri, embedded=False)
    store = (settings.home / "mlflow").resolve()
    return TrackingTarget(
        uri=f"sqlite:///{store / 'mlflow.db'}", embedded=True, artifact_root=store / "artifacts"
    )


def prepare_target(settings: HearteyeSettings) -> TrackingTarget:
    """The effective target, with the embedded store's folder created; sets no process state.

    Library code passes the target (or a client built from it) explicitly; it never points the
    mlflow library itself at a URI for the rest of the process.
    """
    target = tracking_target(settings)
    if target.embedded and target.artifact_root is not None:
        target.artifact_root.mkdir(parents=True, exist_ok=True)
    return target


@contextmanager
def fluent_api_on(target: TrackingTarget) -> Iterator[None]:
    """Point MLflow's fluent API at ``target`` for the block only, then put back what was there.

    For the calls that take no client (``mlflow.start_run``, ``log_metrics``, ``pyfunc.log_model``:
    a training run). MLflow mirrors the URI it is given into ``MLFLOW_TRACKING_URI``; both the
    in-process URI and the variable are restored on exit, so nothing outlives the block.
    """
    import mlflow

    variable = os.environ.get("MLFLOW_TRACKING_URI")
    effective = mlflow.get_tracking_uri() if mlflow.is_tracking_uri_set() else None
    # A URI set in-process that differs from the variable is put back; otherwise none is (the
    # variable, or MLflow's default, applies again).
    pinned = effective if effective is not None and effective != variable else None
    mlflow.set_tracking_uri(target.uri)
    try:
        yield
    finally:
        mlflow.set_tracking_uri(pinned)  # type: ignore[arg-type]  # None: unset, as MLflow allows
        if variable is None:
            os.environ.pop("MLFLOW_TRACKING_URI", None)
        else:
            os.environ["MLFLOW_TRACKING_URI"] = variable


def ensure_experiment(client: MlflowClient, target: TrackingTarget, name: str) -> str:
    """Id of experiment ``name``, created (with an embedded artifact location if needed) when absent."""
    experiment = client.get_experiment_by_name(name)
    if experiment is not None:
        return str(experiment.experiment_id)
    from mlflow.exceptions import MlflowException

    try:
        return str(client.create_experiment(name, artifact_location=target.artifact_location(name)))
    except MlflowException:
        # Lost a race with another process creating it: use theirs.
        experiment = client.get_experiment_by_name(name)
        if experiment is None:
            raise
        return str(experiment.experiment_id)


def tracking_username(target: TrackingTarget) -> str | None:
    """The MLflow user the client authenticates as (remote server with basic auth), else None."""
    if not target.uri.startswith(("http://", "https://")):
        return None
    return os.environ.get("MLFLOW_TRACKING_USERNAME", "").strip() or None


_UNREACHABLE_MARKERS = (
    "Max retries exceeded",
    "Failed to establish a new connection",
    "Connection refused",
    "Name or service not known",
    "timed out",
)


def translate_mlflow_error(
    exc: BaseException, target: TrackingTarget, action: str
) -> TrackingError | None:
    """A one-line :class:`TrackingError` for auth, permission and connection failures, else None.

    ``action`` says what was attempted, e.g. ``"set the production alias of ecg-xgboost"``.
    Other MLflow errors (not found, invalid value) are the caller's to interpret.
    """
    from mlflow.exceptions import MlflowException

    if not isinstance(exc, MlflowException):
        return None
    code = exc.error_code
    user = tracking_username(target)
    who = f"MLflow user '{user}'" if user else "this MLflow client"
    if code == "PERMISSION_DENIED":
        return TrackingError(
            f"permission denied: {who} may not {action} on {target.uri} "
            "(an MLflow admin must grant EDIT or MANAGE)"
        )
    if code in ("UNAUTHENTICATED", "CUSTOMER_UNAUTHORIZED"):
        return TrackingError(
            f"{target.uri} refused the credentials while trying to {action}: check "
            "MLFLOW_TRACKING_USERNAME / MLFLOW_TRACKING_PASSWORD"
        )
    message = str(exc.message)
    if any(marker in message for marker in _UNREACHABLE_MARKERS):
        return TrackingError(
            f"tracking server {target.uri} is unreachable (while trying to {action})"
        )
    return None


@dataclass(frozen=True)
class Reachability:
    """Whether the tracking target answers an authenticated request; ``error`` says why not."""

    reachable: bool
    error: str | None = None


def check_reachable(target: TrackingTarget, timeout_s: float = 3.0) -> Reachability:
    """Probe the target: one authenticated HTTP request for a server, a query for a local store.

    Never raises and never waits longer than about ``timeout_s`` (MLflow's own client would retry
    for minutes against a server that is down).
    """
    if not target.uri.startswith(("http://", "https://")):
        try:
            from mlflow import MlflowClient

            MlflowClient(tracking_uri=target.uri).search_experiments(max_results=1)
        except Exception as exc:
            return Reachability(False, f"cannot open the local store {target.uri}: {exc}")
        return Reachability(True)

    import httpx

    user = os.environ.get("MLFLOW_TRACKING_USERNAME")
    password = os.environ.get("MLFLOW_TRACKING_PASSWORD")
    auth = httpx.BasicAuth(user, password) if user and password else None
    url = target.uri.rstrip("/") + "/api/2.0/mlflow/registered-models/search"
    try:
        response = httpx.get(url, params={"max_results": 1}, auth=auth, timeout=timeout_s)
    except httpx.HTTPError as exc:
        return Reachability(False, f"tracking server {target.uri} is unreachable: {exc}")
    if response.status_code == 401:
        return Reachability(
            False,
            f"{target.uri} refused the credentials "
            "(MLFLOW_TRACKING_USERNAME / MLFLOW_TRACKING_PASSWORD)",
        )
    if response.status_code != 200:
        return Reachability(False, f"{target.uri} answered HTTP {response.status_code}")
    return Reachability(True)


def require_reachable(target: TrackingTarget, timeout_s: float = 3.0) -> None:
    """Fail fast with a :class:`TrackingError` when the tracking server does not answer."""
    result = check_reachable(target, timeout_s)
    if not result.reachable:
        raise TrackingError(result.error or f"tracking server {target.uri} is unreachable")
