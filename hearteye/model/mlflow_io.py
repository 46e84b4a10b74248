"""Logging a beat classifier as an MLflow pyfunc model and registering it as a new version."""

from __future__ import annotations

import tempfile
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

#: What a logged model needs at inference, per kind (pinned like the project).
_COMMON_REQUIREMENTS = [
    "mlflow==3.17.2",
    "numpy>=2.0,<3",
    "scipy>=1.13,<2",
    "numba>=0.61,<1",
    "pandas>=2.2,<4",
    "pydantic>=2.7,<3",
    "pydantic-settings>=2.4,<3",
]
KIND_REQUIREMENTS = {"xgboost": ["xgboost-cpu==3.2.0"], "bilstm": ["torch==2.13.0"]}


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


def log_beat_model(
    classifier: BeatClassifier,
    config: PreprocessConfig,
    example: dict[str, Any],
) -> ModelInfo:
    """Log ``classifier`` + preprocessing into the active run as a pyfunc model (not registered)."""
    import mlflow

    with tempfile.TemporaryDirectory(prefix="hearteye-model-") as tmp:
        model_dir = Path(tmp) / "beat_model"
        save_model_dir(classifier, config, model_dir)
        return mlflow.pyfunc.log_model(
            name=MODEL_ARTIFACT_NAME,
            # Models from code: MLflow stores this file and runs it at load (no pickling).
            python_model=str(Path(__file__).with_name("pyfunc_entry.py")),
            artifacts={ARTIFACT_KEY: str(model_dir)},
            # Ship the exact domain code (preprocessing included) inside the model.
            code_paths=[str(Path(hearteye.__file__).parent)],
            signature=signature(),
            input_example=example,
            pip_requirements=[*_COMMON_REQUIREMENTS, *KIND_REQUIREMENTS[classifier.kind]],
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
