"""What a logged model carries: the prediction code and nothing of the platform, and requirements
pinned at the installed versions. The model loads and predicts with only its own copy of the code."""

from __future__ import annotations

import subprocess
import sys
from importlib.metadata import version
from pathlib import Path

import pytest

from hearteye.model.mlflow_io import MODEL_CODE
from tests.training.conftest import TrainedStore

pytestmark = [pytest.mark.data, pytest.mark.slow]

# Runs in a fresh interpreter: the platform package cannot be imported at all, and the model must
# load and predict a real strip with the ``hearteye`` it carries (not the installed one).
_LOAD_AND_PREDICT = """
import importlib.abc, sys
from pathlib import Path

class NoPlatform(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in ("hearteye_platform", "training", "serving", "cli"):
            raise ImportError(f"a logged model must not need {name}")
        return None

sys.meta_path.insert(0, NoPlatform())
import mlflow.pyfunc, wfdb
model_dir, mitdb = Path(sys.argv[1]), sys.argv[2]
model = mlflow.pyfunc.load_model(str(model_dir))
import hearteye
assert Path(hearteye.__file__).resolve().is_relative_to(model_dir.resolve()), hearteye.__file__
record = wfdb.rdrecord(f"{mitdb}/100", channels=[0], sampto=3600)
out = model.predict({"signal": record.p_signal[:, 0].tolist(), "fs": 360.0})
assert len(out) >= 10, out
print("ok", len(out), sorted(m for m in sys.modules if m.startswith("hearteye")))
"""


def _model_dir(store: TrainedStore, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    import mlflow

    monkeypatch.setenv("MLFLOW_TRACKING_URI", store.tracking_uri)
    return Path(
        mlflow.artifacts.download_artifacts(
            artifact_uri="models:/ecg-xgboost/1", dst_path=str(tmp_path / "model")
        )
    )


def test_logged_model_carries_only_the_prediction_code(
    quick_xgboost: TrainedStore,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    mitdb_dir: Path,
) -> None:
    model_dir = _model_dir(quick_xgboost, tmp_path, monkeypatch)
    shipped = {p.name for p in (model_dir / "code" / "hearteye").iterdir()}
    assert shipped == set(MODEL_CODE)
    everything = {
        p.relative_to(model_dir / "code").as_posix() for p in model_dir.rglob("code/**/*")
    }
    for platform_part in ("identity", "auth_tokens", "audit", "db", "registry", "dataset"):
        assert not any(platform_part in part for part in everything), platform_part
    # Nor the platform's own project files: MLflow copies the uv project of the working
    # directory (the whole platform's lock and pyproject) into a model unless told not to.
    top = {p.name for p in model_dir.iterdir()}
    assert not top & {"uv.lock", "pyproject.toml", ".python-version"}, top

    done = subprocess.run(
        [sys.executable, "-c", _LOAD_AND_PREDICT, str(model_dir), str(mitdb_dir)],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.startswith("ok")


def test_requirements_are_the_installed_versions(
    quick_xgboost: TrainedStore, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    model_dir = _model_dir(quick_xgboost, tmp_path, monkeypatch)
    lines = [
        line.strip()
        for line in (model_dir / "requirements.txt").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    pins = dict(line.split("==", 1) for line in lines)
    for name in ("mlflow", "numpy", "scipy", "numba", "pandas", "xgboost-cpu"):
        assert pins[name] == version(name), (name, pins)
    assert "torch" not in pins  # an XGBoost model does not drag in torch
