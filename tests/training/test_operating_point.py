"""The XGBoost V operating point: chosen on out-of-fold predictions, never trading S or V Se."""

from __future__ import annotations

import numpy as np

from hearteye.labels import AAMI_CLASSES
from training.operating_point import choose_v_weight

N, V = AAMI_CLASSES.index("N"), AAMI_CLASSES.index("V")


def _proba(rows: list[tuple[int, float]]) -> np.ndarray:
    """One row per beat: ``(class the posterior favours over N, its posterior)``, rest on N."""
    out = np.zeros((len(rows), len(AAMI_CLASSES)), np.float32)
    for i, (c, p) in enumerate(rows):
        out[i, c] = p
        out[i, N] += 1 - p
    return out


def test_v_weight_trades_false_v_for_ppv_but_keeps_sensitivity() -> None:
    # 10 true V beats (posteriors 0.6-0.95), 10 N beats the model calls V at 0.55-0.59.
    true_v = [(V, 0.6 + 0.035 * i) for i in range(10)]
    false_v = [(V, 0.55 + 0.004 * i) for i in range(10)]
    labels = np.array([V] * 10 + [N] * 10)
    weights, cv = choose_v_weight(labels, [_proba(true_v + false_v)], floor=0.9)
    assert weights[V] < 1.0
    assert [w for i, w in enumerate(weights) if i != V] == [1.0] * (len(AAMI_CLASSES) - 1)
    assert cv["V_sensitivity"] >= 0.9
    assert cv["V_ppv"] == 1.0  # every false V now N, every true V kept


def test_no_weight_keeps_the_floor_means_argmax() -> None:
    labels = np.array([V] * 4 + [N] * 4)
    proba = _proba([(V, 0.3)] * 4 + [(V, 0.6)] * 4)  # V beats look N, N beats look V
    assert choose_v_weight(labels, [proba], floor=0.9) == ((1.0,) * len(AAMI_CLASSES), {})


def test_the_mean_over_fold_assignments_decides() -> None:
    # Assignment 1 would allow a low weight; assignment 2 loses V sensitivity with it.
    labels = np.array([V] * 10 + [N] * 10)
    one = _proba([(V, 0.9)] * 10 + [(V, 0.55)] * 10)
    two = _proba([(V, 0.56)] * 10 + [(V, 0.55)] * 10)
    alone, _ = choose_v_weight(labels, [one], floor=0.9)
    both, cv = choose_v_weight(labels, [one, two], floor=0.9)
    assert both[V] > alone[V]
    assert cv["V_sensitivity"] >= 0.9
