"""Is a logged beat model fit to serve? The one check, run by the promotion gate and by serving.

A model directory (as MLflow stores a version: ``MLmodel``, ``input_example.json``,
``artifacts/beat_model/``) passes when it loads as an :class:`ECGBeatModel` and its own input
example (a real strip recorded at training time) gives at least one beat, each with finite
probabilities over the AAMI classes that sum to 1. The gate refuses exactly what every serving
worker would refuse, because both call :func:`load_and_check`.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import numpy as np

from hearteye.errors import HeartEyeError, first_line
from hearteye.labels import AAMI_CLASSES
from hearteye.model.wrapper import ARTIFACT_KEY, ECGBeatModel, StripInput

#: The input example MLflow saves beside the model.
INPUT_EXAMPLE_FILE = "input_example.json"
#: Allowed distance of each beat's probability sum from 1.
SUM_TOLERANCE = 1e-3

Stage = Literal["load", "smoke"]


class SmokeTestError(HeartEyeError):
    """The model does not load (``stage`` "load") or answers its example badly ("smoke")."""

    def __init__(self, stage: Stage, problem: str) -> None:
        self.stage: Stage = stage
        self.problem = problem
        super().__init__(f"{stage} failed: {problem}")


@dataclass(frozen=True)
class CheckedModel:
    """A loaded model and the number of beats its smoke prediction found."""

    model: ECGBeatModel = field(repr=False)
    beats: int


def load_and_check(model_dir: Path) -> CheckedModel:
    """Load the model in ``model_dir`` and smoke-test it; raise :class:`SmokeTestError`."""
    model = ECGBeatModel()
    try:
        model.load_dir(model_dir / "artifacts" / ARTIFACT_KEY)
    except Exception as exc:  # ModelLoadError, or anything a corrupt classifier file raises
        raise SmokeTestError("load", first_line(exc)) from exc
    return CheckedModel(model, smoke_test(model, model_dir))


def smoke_test(model: ECGBeatModel, model_dir: Path) -> int:
    """Predict the input example saved in ``model_dir``; the number of beats, or raise."""
    try:
        example = json.loads((model_dir / INPUT_EXAMPLE_FILE).read_text())
        strip = StripInput(
            signal=np.asarray(example["signal"], dtype=np.float64),
            fs=float(example["fs"]),
            r_peaks=example.get("r_peaks"),
        )
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise SmokeTestError(
            "smoke", f"no usable input example in the model: {first_line(exc)}"
        ) from exc
    try:
        (prediction,) = model.predict_strips([strip])
    except Exception as exc:  # whatever the model raises is the check's answer
        raise SmokeTestError("smoke", first_line(exc)) from exc
    proba = np.asarray(prediction.probabilities)
    if len(prediction) == 0:
        raise SmokeTestError("smoke", "no beats found in the input example")
    if proba.shape != (len(prediction), len(AAMI_CLASSES)):
        raise SmokeTestError("smoke", f"probabilities of shape {proba.shape}")
    if not np.all(np.isfinite(proba)) or not np.allclose(
        proba.sum(axis=1), 1.0, atol=SUM_TOLERANCE
    ):
        raise SmokeTestError("smoke", "probabilities are not finite / normalised")
    return len(prediction)
