"""What every beat classifier provides, and the decision rule shared by all kinds."""

from __future__ import annotations

from pathlib import Path
from typing import Protocol, Self, runtime_checkable

import numpy as np
import numpy.typing as npt

from hearteye.labels import AAMI_CLASSES
from hearteye.preprocess.beats import Beats

ProbArray = npt.NDArray[np.float32]

#: Kinds of model the platform manages, and the registered model name of each.
MODEL_KINDS: dict[str, str] = {"xgboost": "ecg-xgboost", "bilstm": "ecg-bilstm"}


@runtime_checkable
class BeatClassifier(Protocol):
    """A trained per-beat classifier over the shared preprocessing's :class:`Beats`."""

    kind: str

    def predict_proba(self, beats: Beats) -> ProbArray:
        """(n, 5) class probabilities in :data:`AAMI_CLASSES` order; rows sum to 1."""
        ...

    def save(self, directory: Path) -> None:
        """Write everything needed to :meth:`load` the model into ``directory``."""
        ...

    @classmethod
    def load(cls, directory: Path) -> Self:
        """Read a model written by :meth:`save`."""
        ...


def apply_prior_shift(proba: npt.NDArray[np.floating], weights: npt.ArrayLike) -> ProbArray:
    """Re-weight class posteriors (a change of class priors) and renormalise.

    ``weights`` (one per class) is the operating point chosen on DS1; the label is the argmax of
    the result, so the reported probabilities and label always agree.
    """
    w = np.asarray(weights, dtype=np.float64)
    if w.shape != (len(AAMI_CLASSES),) or np.any(w <= 0):
        raise ValueError(f"expected {len(AAMI_CLASSES)} positive class weights, got {w}")
    shifted = np.asarray(proba, dtype=np.float64) * w
    total = shifted.sum(axis=1, keepdims=True)
    return np.asarray(shifted / np.where(total > 0, total, 1.0), dtype=np.float32)
