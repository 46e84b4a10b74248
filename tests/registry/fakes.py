"""Tiny real pyfunc models and version tags shaped like training's, for the registry tests."""

from __future__ import annotations

import mlflow
import pandas as pd

from hearteye.labels import SPLIT_PROTOCOL

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
    """Labels every input row N: enough to load, predict and answer non-empty."""

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
