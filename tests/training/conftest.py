"""Quick training on a private embedded store (``train_quick``); the session's quick-trained XGBoost
version is the ``quick_xgboost`` fixture in tests/conftest.py."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pytest

from hearteye.settings import HearteyeSettings, get_settings


@dataclass(frozen=True)
class TrainedStore:
    """Where a quick training run registered its version, and what it returned."""

    home: Path
    tracking_uri: str
    result: object  # training.run.TrainResult
    #: MLflow's process-wide tracking URI right after training (None: unset, as before it).
    uri_left_set: str | None = None


def train_quick(kind: str, home: Path, mitdb_dir: Path, cache: Path, seed: int = 0) -> TrainedStore:
    import mlflow

    from training.run import train

    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("HEARTEYE_HOME", str(home))
        mp.setenv("HEARTEYE_MITDB_DIR", str(mitdb_dir))
        mp.delenv("MLFLOW_TRACKING_URI", raising=False)
        get_settings.cache_clear()
        settings = HearteyeSettings()
        (home / "cache").mkdir(parents=True, exist_ok=True)
        if not (home / "cache" / "beats").exists():
            (home / "cache" / "beats").symlink_to(cache / "beats", target_is_directory=True)
        (cache / "beats").mkdir(parents=True, exist_ok=True)
        result = train(kind, settings, quick=True, seed=seed)
        left = mlflow.get_tracking_uri() if mlflow.is_tracking_uri_set() else None
        get_settings.cache_clear()
    return TrainedStore(
        home=home, tracking_uri=result.tracking_uri, result=result, uri_left_set=left
    )
