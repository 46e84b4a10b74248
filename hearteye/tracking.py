"""Where MLflow tracking and the model registry live.

``MLFLOW_TRACKING_URI`` (MLflow's own variable) wins when set: a remote ``mlflow server``, with
basic-auth credentials in ``MLFLOW_TRACKING_USERNAME`` / ``MLFLOW_TRACKING_PASSWORD``. Otherwise HeartEye
uses an embedded store under ``HEARTEYE_HOME``: a sqlite database and a local artifact directory.
"""

from __future__ import annotations

import os
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
    """Resolve the tracking target from the environment and settings; creates nothing."""
    uri = os.environ.get("MLFLOW_TRACKING_URI", "").strip()
    if uri:
        return TrackingTarget(uri=uri, embedded=False)
    store = (settings.home / "mlflow").resolve()
    return TrackingTarget(
        uri=f"sqlite:///{store / 'mlflow.db'}", embedded=True, artifact_root=store / "artifacts"
    )


def configure_mlflow(settings: HearteyeSettings) -> TrackingTarget:
    """Point the mlflow client library at the effective target (creating the embedded store's folder)."""
    import mlflow

    target = tracking_target(settings)
    if target.embedded and target.artifact_root is not None:
        target.artifact_root.mkdir(parents=True, exist_ok=True)
    mlflow.set_tracking_uri(target.uri)
    mlflow.set_registry_uri(target.uri)
    return target


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
