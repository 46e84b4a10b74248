"""Choosing the operating point (class prior weights) on DS1 out-of-fold predictions.

Class-balanced training shifts every model's posteriors; the operating point re-weights them so
that, on patients the model has not seen (grouped out-of-fold predictions on DS1), the macro-F1
over N, S, V and F is best. DS2 plays no part.
"""

from __future__ import annotations

import itertools

import numpy as np
import numpy.typing as npt

from hearteye.labels import AAMI_CLASSES
from hearteye.model.base import apply_prior_shift
from training.metrics import class_metrics, confusion

#: Candidate multipliers for the S and V posteriors (N, F and Q stay at 1).
GRID = (0.25, 0.5, 0.75, 1.0, 1.5, 2.0, 3.0, 4.0, 6.0)


def choose_class_weights(
    proba: npt.NDArray[np.floating], labels: npt.NDArray[np.integer]
) -> tuple[tuple[float, ...], float]:
    """Class weights maximising out-of-fold macro-F1, and that macro-F1."""
    s, v = AAMI_CLASSES.index("S"), AAMI_CLASSES.index("V")
    best: tuple[float, tuple[float, ...]] = (-1.0, (1.0,) * len(AAMI_CLASSES))
    # Closest-to-neutral first, so ties go to the least intervention.
    candidates = sorted(
        itertools.product(GRID, GRID), key=lambda w: abs(np.log(w[0])) + abs(np.log(w[1]))
    )
    for ws, wv in candidates:
        weights = [1.0] * len(AAMI_CLASSES)
        weights[s], weights[v] = ws, wv
        pred = np.argmax(apply_prior_shift(proba, weights), axis=1)
        score = class_metrics(confusion(labels, pred), prefix="")["macro_f1"]
        if score > best[0] + 1e-12:
            best = (score, tuple(weights))
    return best[1], best[0]
