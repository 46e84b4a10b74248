"""Fixtures every test tier shares: isolated HeartEye state, an isolated MLflow store, the MIT-BIH data."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Run the tests that use the session's native stack last (stable order otherwise).

    The stack starts on first use and stops at session end; its serving workers poll the registry
    every few seconds, which costs the MLflow server CPU (basic auth hashes the password on every
    request) while the other tiers run.
    """
    items.sort(key=lambda item: "native_stack" in getattr(item, "fixturenames", ()))


@pytest.fixture(scope="session")
def mitdb_dir() -> Path:
    """The real MIT-BIH records (``HEARTEYE_MITDB_DIR``); tests that need them fail loudly without."""
    value = os.environ.get("HEARTEYE_MITDB_DIR")
    path = Path(value) if value else REPO_ROOT.parent / "shared" / "datasets" / "mitdb"
    if not (path / "100.hea").is_file():
        pytest.fail(
            f"MIT-BIH records not found at {path}: set HEARTEYE_MITDB_DIR to the database folder"
        )
    return path


@pytest.fixture(scope="session")
def beat_cache_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A dataset cache shared by the whole session (building all 44 records once is enough)."""
    return tmp_path_factory.mktemp("beat-cache")


@pytest.fixture(autouse=True)
def isolated_state(
    tmp_path_factory: pytest.TempPathFactory,
    monkeypatch: pytest.MonkeyPatch,
    request: pytest.FixtureRequest,
) -> Iterator[Path]:
    """Point HEARTEYE_HOME and MLflow at a fresh temporary store; fail a test that leaks an active run."""
    from hearteye.settings import get_settings

    home = tmp_path_factory.mktemp("hearteye-home")
    monkeypatch.setenv("HEARTEYE_HOME", str(home))
    if "MLFLOW_TRACKING_URI" not in os.environ or not request.node.get_closest_marker(
        "integration"
    ):
        monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{home / 'mlflow.db'}")
        monkeypatch.delenv("MLFLOW_REGISTRY_URI", raising=False)
    get_settings.cache_clear()
    yield home
    get_settings.cache_clear()
    if "mlflow" in __import__("sys").modules:
        import mlflow

        run = mlflow.active_run()
        if run is not None:
            mlflow.end_run("FAILED")
            pytest.fail(f"test leaked an active MLflow run {run.info.run_id}")
