"""Loading one version completely: files -> ``ECGBeatModel`` -> smoke prediction.

A version is only ever handed to the store (and so swapped in) after all three steps succeeded.
The smoke prediction runs the model on its own logged input example (``input_example.json``, a
real strip recorded at training time) and checks the answer is well formed.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Literal

import numpy as np

from hearteye.errors import HeartEyeError
from hearteye.labels import AAMI_CLASSES
from hearteye.model.wrapper import ARTIFACT_KEY, ECGBeatModel, StripInput

Source = Literal["registry", "cache"]
Stage = Literal["resolve", "download", "load", "smoke"]


class VersionLoadError(HeartEyeError):
    """A version could not be loaded; ``stage`` says where it failed."""

    def __init__(self, name: str, version: str | None, stage: Stage, problem: str) -> None:
        self.name = name
        self.version = version
        self.stage = stage
        self.problem = problem
        where = f"{name} v{version}" if version else name
        super().__init__(f"{where}: {stage} failed: {problem}")


@dataclass(frozen=True, eq=False)
class LoadedModel:
    """A fully loaded, smoke-tested version. Immutable: a swap replaces the whole object."""

    name: str
    version: str
    run_id: str | None
    model: ECGBeatModel = field(repr=False)
    kind: str
    loaded_at: datetime
    load_s: float
    source: Source
    smoke_beats: int

    @property
    def version_number(self) -> float:
        """The version as a number for the version gauge (NaN when not numeric)."""
        return float(self.version) if self.version.isdigit() else float("nan")


def load_version(
    name: str, version: str, run_id: str | None, model_dir: Path, source: Source
) -> LoadedModel:
    """Load the model directory of ``name`` v``version`` and smoke-test it."""
    started = time.perf_counter()
    model = ECGBeatModel()
    try:
        model.load_dir(model_dir / "artifacts" / ARTIFACT_KEY)
    except Exception as exc:  # ModelLoadError, or anything a corrupt classifier file raises
        raise VersionLoadError(name, version, "load", _first_line(exc)) from exc
    beats = smoke_test(name, version, model, model_dir)
    kind = type(model.classifier).__name__ if model.classifier is not None else "unknown"
    return LoadedModel(
        name=name,
        version=version,
        run_id=run_id,
        model=model,
        kind=str(getattr(model.classifier, "kind", kind)),
        loaded_at=datetime.now(UTC),
        load_s=time.perf_counter() - started,
        source=source,
        smoke_beats=beats,
    )


def smoke_test(name: str, version: str, model: ECGBeatModel, model_dir: Path) -> int:
    """Predict on the logged input example; return the number of beats, or raise."""
    try:
        example = json.loads((model_dir / "input_example.json").read_text())
        strip = StripInput(
            signal=np.asarray(example["signal"], dtype=np.float64),
            fs=float(example["fs"]),
            r_peaks=example.get("r_peaks"),
        )
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise VersionLoadError(
            name, version, "smoke", f"no usable input example in the model: {_first_line(exc)}"
        ) from exc
    try:
        (prediction,) = model.predict_strips([strip])
    except Exception as exc:
        raise VersionLoadError(name, version, "smoke", _first_line(exc)) from exc
    proba = np.asarray(prediction.probabilities)
    if len(prediction) == 0:
        raise VersionLoadError(name, version, "smoke", "no beats found in the input example")
    if proba.shape != (len(prediction), len(AAMI_CLASSES)):
        raise VersionLoadError(name, version, "smoke", f"probabilities of shape {proba.shape}")
    if not np.all(np.isfinite(proba)) or not np.allclose(proba.sum(axis=1), 1.0, atol=1e-3):
        raise VersionLoadError(name, version, "smoke", "probabilities are not finite / normalised")
    return len(prediction)


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return (text.splitlines()[0] if text else type(exc).__name__)[:300]
