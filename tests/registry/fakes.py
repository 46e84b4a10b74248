"""Tiny real beat models and version tags shaped like training's, for the registry tests."""

from __future__ import annotations

from typing import Any

import mlflow
import numpy as np
import pandas as pd

from hearteye.labels import AAMI_CLASSES, SPLIT_PROTOCOL

#: DS2 metrics that beat de Chazal 2004 on all four S/V numbers.
GOOD_METRICS: dict[str, float] = {
    "ds2_N_sensitivity": 0.95,
    "ds2_N_ppv": 0.98,
    "ds2_N_f1": 0.965,
    "ds2_S_sensitivity": 0.82,
    "ds2_S_ppv": 0.52,
    "ds2_S_f1": 0.64,
    "ds2_V_sensitivity": 0.91,
    "ds2_V_ppv": 0.92,
    "ds2_V_f1": 0.915,
    "ds2_F_sensitivity": 0.30,
    "ds2_F_ppv": 0.20,
    "ds2_F_f1": 0.24,
    "ds2_macro_f1": 0.69,
    "ds2_accuracy": 0.93,
}

EXAMPLE = pd.DataFrame({"signal_mv": [0.01, 0.25, 1.1, 0.3], "fs": [360.0] * 4})


def requirements() -> list[str]:
    """What MLflow would infer for ``BeatLabeler`` (the same pins), given explicitly: inferring
    them starts a Python process that imports MLflow, ~4 s per logged model."""
    from importlib.metadata import version

    names = ("mlflow", "cloudpickle", "hearteye", "numpy", "pandas")
    return [f"{name}=={version(name)}" for name in names]


class BeatLabeler(mlflow.pyfunc.PythonModel):  # type: ignore[misc]
    """Labels every input row N: a pyfunc that loads and answers, but no beat model (serving and
    the gate refuse it: no probabilities)."""

    # No type hints on purpose: MLflow would read them as a schema.
    def predict(self, context, model_input, params=None):  # type: ignore[no-untyped-def]
        return pd.DataFrame({"label": ["N"] * len(model_input)})


def version_tags(
    metrics: dict[str, float], protocol: str | None = SPLIT_PROTOCOL
) -> dict[str, str]:
    """Version tags as training writes them (string floats, protocol, lineage)."""
    tags = {key: repr(float(value)) for key, value in metrics.items()}
    if protocol is not None:
        tags["split_protocol"] = protocol
    tags.update({"dataset_digest": "d1g3st", "code_version": "test", "model_kind": "xgboost"})
    return tags


#: A healthy operating point, and one gone wrong: a NaN weight gives NaN probabilities.
HEALTHY_WEIGHTS = (1.0,) * len(AAMI_CLASSES)
NAN_WEIGHTS = (1.0, float("nan"), 1.0, 1.0, 1.0)


def synthetic_strip(seconds: float = 10.0, fs: float = 360.0) -> dict[str, Any]:
    """An input example the QRS detector finds a beat a 0.8 s in (P, QRS and T as Gaussians)."""
    t = np.arange(int(seconds * fs)) / fs
    signal = 0.02 * np.sin(2 * np.pi * 0.3 * t)
    for beat in np.arange(0.4, seconds, 0.8):
        signal += 1.2 * np.exp(-0.5 * ((t - beat) / 0.012) ** 2)
        signal += 0.25 * np.exp(-0.5 * ((t - beat - 0.25) / 0.04) ** 2)
        signal += 0.1 * np.exp(-0.5 * ((t - beat + 0.16) / 0.02) ** 2)
    return {"signal": [round(float(v), 4) for v in signal], "fs": fs}


def tiny_xgboost(class_weights: tuple[float, ...] = HEALTHY_WEIGHTS) -> Any:
    """A real XGBoost beat classifier: two rounds on random features (milliseconds to fit)."""
    import xgboost as xgb

    from hearteye.model.xgboost_model import DEFAULT_FEATURES, XGBoostBeatModel

    rng = np.random.default_rng(0)
    features = rng.normal(size=(50, len(DEFAULT_FEATURES))).astype(np.float32)
    labels = np.arange(50) % len(AAMI_CLASSES)
    params = {"objective": "multi:softprob", "num_class": len(AAMI_CLASSES), "max_depth": 2}
    booster = xgb.train({**params, "nthread": 1}, xgb.DMatrix(features, label=labels), 2)
    return XGBoostBeatModel(booster=booster, class_weights=class_weights)


def log_tiny_beat_model(class_weights: tuple[float, ...] = HEALTHY_WEIGHTS) -> str:
    """Log a tiny real beat model, as training logs one, into the active run; its model URI."""
    from hearteye.model.mlflow_io import log_beat_model
    from hearteye.preprocess.config import PreprocessConfig

    info = log_beat_model(tiny_xgboost(class_weights), PreprocessConfig(), synthetic_strip())
    return str(info.model_uri)
