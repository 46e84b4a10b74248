"""Logging a beat classifier as an MLflow pyfunc model and registering it as a new version."""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from importlib.metadata import version
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

import hearteye
from hearteye.labels import AAMI_CLASSES
from hearteye.model.base import BeatClassifier
from hearteye.model.wrapper import ARTIFACT_KEY, save_model_dir
from hearteye.preprocess.config import PreprocessConfig

if TYPE_CHECKING:
    from mlflow import MlflowClient
    from mlflow.entities.model_registry import ModelVersion
    from mlflow.models import ModelSignature
    from mlflow.models.model import ModelInfo

#: Name of the model inside a training run.
MODEL_ARTIFACT_NAME = "model"

#: The parts of ``hearteye`` a logged model needs to predict (the wrapper, the classifiers, the one
#: preprocessing implementation, the labels and their errors); nothing else rides inside a model.
MODEL_CODE = ("__init__.py", "errors.py", "labels.py", "preprocess", "model")

#: The distributions a logged model imports at inference, per kind; pinned at the versions
#: installed where the model was trained, so the model is served with what it was tested with.
COMMON_DISTRIBUTIONS = ("mlflow", "numpy", "scipy", "numba", "pandas")
KIND_DISTRIBUTIONS = {"xgboost": ("xgboost-cpu",), "bilstm": ("torch",)}


def pip_requirements(kind: str) -> list[str]:
    """``name==version`` for every distribution a model of ``kind`` imports, as installed here."""
    return [
        f"{name}=={version(name)}" for name in (*COMMON_DISTRIBUTIONS, *KIND_DISTRIBUTIONS[kind])
    ]


def copy_model_code(dest: Path) -> Path:
    """Copy the :data:`MODEL_CODE` parts of ``hearteye`` into ``dest/hearteye`` and return it."""
    source = Path(hearteye.__file__).parent
    package = dest / "hearteye"
    package.mkdir(parents=True)
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
    for name in MODEL_CODE:
        if (source / name).is_dir():
            shutil.copytree(source / name, package / name, ignore=ignore)
        else:
            shutil.copy2(source / name, package / name)
    return package


def signature() -> ModelSignature:
    """Input: rows of (signal, fs, optional r_peaks). Output: one row per beat."""
    from mlflow.models import ModelSignature
    from mlflow.types import DataType
    from mlflow.types.schema import Array, ColSpec, Schema

    inputs = Schema(
        [
            ColSpec(Array(DataType.double), "signal"),
            ColSpec(DataType.double, "fs"),
            ColSpec(Array(DataType.long), "r_peaks", required=False),
        ]
    )
    outputs = Schema(
        [
            ColSpec(DataType.long, "strip"),
            ColSpec(DataType.long, "sample"),
            ColSpec(DataType.double, "time_s"),
            ColSpec(DataType.string, "label"),
            *(ColSpec(DataType.double, f"prob_{c}") for c in AAMI_CLASSES),
        ]
    )
    return ModelSignature(inputs=inputs, outputs=outputs)


def input_example(signal: np.ndarray, fs: float) -> dict[str, Any]:
    """A real strip as the logged input example (values rounded to the ADC's resolution)."""
    return {"signal": [round(float(v), 4) for v in signal], "fs": float(fs)}


@contextmanager
def _no_uv_project_files() -> Iterator[None]:
    """Keep MLflow from copying the working directory's uv project (the platform's lock and
    pyproject: every dependency of training, serving and the CLI) into the model; the model's
    requirements are ``pip_requirements`` (its own, at the installed versions)."""
    name = "MLFLOW_UV_AUTO_DETECT"
    before = os.environ.get(name)
    os.environ[name] = "false"
    try:
        yield
    finally:
        if before is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = before


def log_beat_model(
    classifier: BeatClassifier,
    config: PreprocessConfig,
    example: dict[str, Any],
) -> ModelInfo:
    """Log ``classifier`` + preprocessing into the active run as a pyfunc model (not registered)."""
    import mlflow

    with (
        tempfile.TemporaryDirectory(prefix="hearteye-model-") as tmp,
        _no_uv_project_files(),
    ):
        model_dir = Path(tmp) / "beat_model"
        save_model_dir(classifier, config, model_dir)
        return mlflow.pyfunc.log_model(
            name=MODEL_ARTIFACT_NAME,
            # Models from code: MLflow stores this file and runs it at load (no pickling).
            python_model=str(Path(__file__).with_name("pyfunc_entry.py")),
            artifacts={ARTIFACT_KEY: str(model_dir)},
            # Ship the exact prediction code (preprocessing included) inside the model.
            code_paths=[str(copy_model_code(Path(tmp) / "code"))],
            signature=signature(),
            input_example=example,
            pip_requirements=pip_requirements(classifier.kind),
            metadata={"hearteye_version": hearteye.__version__, "model_kind": classifier.kind},
        )


def register_version(
    client: MlflowClient,
    name: str,
    model_info: ModelInfo,
    run_id: str,
    tags: dict[str, str],
    description: str | None = None,
) -> ModelVersion:
    """Create a new version of ``name`` with all ``tags`` set in the same call.

    The version is created with its tags atomically; if the server fails before it answers, no
    version exists. The production alias is never touched here.
    """
    from mlflow.exceptions import MlflowException

    try:
        client.get_registered_model(name)
    except MlflowException:
        try:
            client.create_registered_model(
                name, description=f"HeartEye {name}: per-beat AAMI classifier on raw ECG strips"
            )
        except MlflowException:
            client.get_registered_model(name)  # created concurrently: fine if it exists now
    return client.create_model_version(
        name=name,
        source=model_info.model_uri,
        run_id=run_id,
        tags=tags,
        description=description,
        model_id=model_info.model_id,
    )
