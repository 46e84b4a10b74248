"""Per-class sensitivity, positive predictivity and F1, macro-F1 and accuracy (DS2 and `ml evaluate`)."""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from hearteye.labels import AAMI_CLASSES

#: Classes reported and averaged: Q (7 beats in DS2) is too rare to measure and, as in the
#: literature, is left out of the per-class figures and the macro average.
REPORTED_CLASSES = ("N", "S", "V", "F")


def confusion(y_true: npt.ArrayLike, y_pred: npt.ArrayLike) -> npt.NDArray[np.int64]:
    """5x5 confusion matrix, rows = reference, columns = predicted, AAMI_CLASSES order."""
    k = len(AAMI_CLASSES)
    t = np.asarray(y_true, dtype=np.int64)
    p = np.asarray(y_pred, dtype=np.int64)
    return np.bincount(t * k + p, minlength=k * k).reshape(k, k)


def class_metrics(cm: npt.NDArray[np.int64], prefix: str = "ds2_") -> dict[str, float]:
    """``{prefix}{C}_sensitivity|ppv|f1`` for N, S, V, F plus macro-F1 and accuracy (fractions)."""
    out: dict[str, float] = {}
    f1s = []
    for label in REPORTED_CLASSES:
        i = AAMI_CLASSES.index(label)
        tp = float(cm[i, i])
        se = tp / cm[i].sum() if cm[i].sum() else 0.0
        ppv = tp / cm[:, i].sum() if cm[:, i].sum() else 0.0
        f1 = 2 * se * ppv / (se + ppv) if se + ppv else 0.0
        out[f"{prefix}{label}_sensitivity"] = se
        out[f"{prefix}{label}_ppv"] = ppv
        out[f"{prefix}{label}_f1"] = f1
        f1s.append(f1)
    out[f"{prefix}macro_f1"] = float(np.mean(f1s))
    out[f"{prefix}accuracy"] = float(np.trace(cm) / cm.sum()) if cm.sum() else 0.0
    return out
