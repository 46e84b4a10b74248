"""Registry fixtures: a ready MLflow store per test and tiny real pyfunc models registered in it."""

from __future__ import annotations

import shutil
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import pytest

from hearteye.labels import SPLIT_PROTOCOL
from hearteye.registry import Registry, connect
from tests.registry.fakes import (
    GOOD_METRICS,
    HEALTHY_WEIGHTS,
    log_tiny_beat_model,
    version_tags,
)

Register = Callable[..., str]


@pytest.fixture(scope="session")
def template_db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An empty, migrated MLflow sqlite database, copied into each test (migrating is slow)."""
    from mlflow import MlflowClient

    path = tmp_path_factory.mktemp("mlflow-template") / "mlflow.db"
    MlflowClient(tracking_uri=f"sqlite:///{path}").search_experiments(max_results=1)
    return path


@pytest.fixture
def registry(isolated_state: Path, template_db: Path, monkeypatch: pytest.MonkeyPatch) -> Registry:
    """A registry handle on this test's own sqlite store (artifacts under its HEARTEYE_HOME)."""
    shutil.copy(template_db, isolated_state / "mlflow.db")
    monkeypatch.chdir(isolated_state)  # nothing may land in the repository's working directory
    return connect(probe=False)


def with_settings(registry: Registry, **changes: Any) -> Registry:
    """The same registry under different settings (e.g. a short lock lease)."""
    return replace(registry, settings=registry.settings.model_copy(update=changes))


@pytest.fixture
def log_model(registry: Registry) -> Callable[..., str]:
    """Log a fresh tiny real beat model; returns its model URI (``models:/m-…``).

    ``class_weights``: its operating point (``NAN_WEIGHTS``: a model serving refuses).
    ``input_example=False``: the logged model's input example is deleted afterwards.
    """
    import mlflow

    from hearteye.tracking import ensure_experiment

    experiment_id = ensure_experiment(registry.client, registry.target, "registry-tests")

    def _log(input_example: bool = True, class_weights: tuple[float, ...] = HEALTHY_WEIGHTS) -> str:
        with mlflow.start_run(experiment_id=experiment_id):
            uri = log_tiny_beat_model(class_weights)
        if not input_example:
            (model_files(registry, uri) / "input_example.json").unlink()
        return uri

    return _log


def model_files(registry: Registry, model_uri: str) -> Path:
    """Where the embedded store keeps a logged model's files."""
    location = registry.client.get_logged_model(model_uri.removeprefix("models:/"))
    return Path(urlparse(location.artifact_location).path)


@pytest.fixture
def shared_model_uri(log_model: Callable[..., str]) -> str:
    return log_model()


@pytest.fixture
def register(registry: Registry, shared_model_uri: str) -> Register:
    """Register a new version (of ``ecg-xgboost`` by default) tagged like training's versions."""
    import mlflow

    def _register(
        name: str = "ecg-xgboost",
        metrics: dict[str, float] | None = None,
        protocol: str | None = SPLIT_PROTOCOL,
        model_uri: str | None = None,
        **overrides: float,
    ) -> str:
        values = dict(GOOD_METRICS if metrics is None else metrics)
        values.update(overrides)
        mv = mlflow.register_model(model_uri or shared_model_uri, name)
        version = str(mv.version)
        for key, value in version_tags(values, protocol).items():
            registry.client.set_model_version_tag(name, version, key, value)
        return version

    return _register
