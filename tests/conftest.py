"""Fixtures every test tier shares: isolated HeartEye state, an isolated MLflow store, the MIT-BIH data."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from tests.training.conftest import TrainedStore

REPO_ROOT = Path(__file__).resolve().parents[1]

# OpenMP threads (torch's BiLSTM, XGBoost) that wait by sleeping rather than spinning: on the
# shared 2-core machine a spinning waiter starves the thread it waits for whenever other work
# holds a core (a quick BiLSTM fit took 93 s instead of 8-12 s on a busy host). Same thread
# counts, so the same results. Set here, before anything loads libgomp; the subprocesses the
# tests start (make demo, notebook kernels, the native stack) inherit it.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")


#: What a test needs from the machine, by the fixture that provides it: a test using the fixture
#: (directly or through another) carries these markers, so that a tier selected with `-m` never
#: runs a test that needs what the tier excludes. Tests that call a tool themselves (nginx, the
#: compose binary) carry the marker in their module.
FIXTURE_NEEDS = {
    "pg_admin_url": ("postgres",),
    "compose_model": ("compose",),
    "native_stack": ("postgres", "nginx"),
}


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Mark each test with what its fixtures need (``FIXTURE_NEEDS``); run the tests that use the
    session's native stack last (stable order otherwise).

    The stack starts on first use and stops at session end; its serving workers poll the registry
    every few seconds, which costs the MLflow server CPU (basic auth hashes the password on every
    request) while the other tiers run.
    """
    for item in items:
        used = set(getattr(item, "fixturenames", ()))
        for fixture, markers in FIXTURE_NEEDS.items():
            if fixture in used:
                for marker in markers:
                    item.add_marker(marker)
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


@pytest.fixture(scope="session")
def quick_xgboost(
    tmp_path_factory: pytest.TempPathFactory, mitdb_dir: Path, beat_cache_dir: Path
) -> TrainedStore:
    """ecg-xgboost v1, quick-trained (seed 0) once per session on a private embedded store.

    Read-only: tests/training inspects the run and the version; tests/serving copies the
    registry database and registers more versions there (the artifacts are shared)."""
    from tests.training.conftest import train_quick

    return train_quick("xgboost", tmp_path_factory.mktemp("xgb-home"), mitdb_dir, beat_cache_dir)


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
