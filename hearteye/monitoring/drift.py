"""Drift of a window of observations from a model's reference profile.

Every signal is scored with the population stability index over the reference's bins,
``PSI = sum((p_window - p_ref) * ln(p_window / p_ref))`` (fractions floored at
:data:`PSI_FLOOR`); the customary reading is < 0.1 stable, 0.1-0.25 moderate, > 0.25 a shift.
The class mix also gets Pearson's chi-square goodness-of-fit p-value against the reference mix.
A signal "fires" when its PSI exceeds the threshold and the window holds at least ``min_strips``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final

import numpy as np
import numpy.typing as npt
from scipy import stats

from hearteye.labels import AAMI_CLASSES
from hearteye.monitoring.profile import (
    STRIP_MEASURES,
    Distribution,
    ReferenceProfile,
    StripObservation,
    bin_counts,
)

#: Smallest fraction used in the PSI (an empty bin would make it infinite).
PSI_FLOOR: Final = 1e-4
#: Every signal, in report order: the strip measures, beat confidence, the class mix.
SIGNALS: Final = (*STRIP_MEASURES, "confidence", "class_mix")


def psi(reference: Sequence[float], counts: npt.ArrayLike) -> float:
    """Population stability index of observed ``counts`` against ``reference`` fractions."""
    observed = np.asarray(counts, dtype=np.float64)
    total = observed.sum()
    if total <= 0:
        return math.nan
    p = np.maximum(observed / total, PSI_FLOOR)
    q = np.maximum(np.asarray(reference, dtype=np.float64), PSI_FLOOR)
    return float(np.sum((p - q) * np.log(p / q)))


def chi_square_p(reference: Sequence[float], counts: npt.ArrayLike) -> float:
    """p-value of observed ``counts`` under the ``reference`` fractions (floored like the PSI)."""
    observed = np.asarray(counts, dtype=np.float64)
    total = observed.sum()
    if total <= 0:
        return math.nan
    q = np.maximum(np.asarray(reference, dtype=np.float64), PSI_FLOOR)
    expected = q / q.sum() * total
    return float(stats.chisquare(observed, expected).pvalue)


@dataclass(frozen=True)
class SignalDrift:
    """One signal: its PSI, whether it fires, and the window's and the reference's medians."""

    signal: str
    psi: float
    fired: bool
    window_median: float | None
    reference_median: float | None
    n: int


@dataclass(frozen=True)
class DriftReport:
    """A window compared with the reference profile."""

    strips: int
    beats: int
    enough_data: bool
    psi_threshold: float
    signals: list[SignalDrift]
    class_mix: dict[str, float]
    reference_class_mix: dict[str, float]
    class_mix_p_value: float
    low_confidence_per_min: float
    reference_low_confidence_per_min: float

    @property
    def fired(self) -> list[str]:
        return [s.signal for s in self.signals if s.fired]


def compare(
    profile: ReferenceProfile,
    window: Sequence[StripObservation],
    *,
    psi_threshold: float,
    min_strips: int,
) -> DriftReport:
    """Score every signal of ``window`` against ``profile``."""
    enough = len(window) >= min_strips
    signals = [
        _measure(name, profile.measures[name], [o.measures[name] for o in window])
        for name in STRIP_MEASURES
    ]
    confidence = (
        np.concatenate([o.confidence for o in window]) if window else np.zeros(0, np.float64)
    )
    signals.append(_measure("confidence", profile.confidence, confidence))
    classes = np.concatenate([o.classes for o in window]) if window else np.zeros(0, np.intp)
    counts = np.bincount(classes, minlength=len(AAMI_CLASSES)).astype(np.float64)
    reference_mix = [profile.class_fractions.get(c, 0.0) for c in AAMI_CLASSES]
    signals.append(
        SignalDrift("class_mix", psi(reference_mix, counts), False, None, None, int(classes.size))
    )
    signals = [
        SignalDrift(
            s.signal,
            s.psi,
            enough and math.isfinite(s.psi) and s.psi > psi_threshold,
            s.window_median,
            s.reference_median,
            s.n,
        )
        for s in signals
    ]
    minutes = sum(o.duration_s for o in window) / 60.0
    low = sum(o.low_confidence_beats for o in window)
    total = counts.sum()
    return DriftReport(
        strips=len(window),
        beats=int(classes.size),
        enough_data=enough,
        psi_threshold=psi_threshold,
        signals=signals,
        class_mix=dict(
            zip(AAMI_CLASSES, (counts / total if total else counts).tolist(), strict=True)
        ),
        reference_class_mix=dict(zip(AAMI_CLASSES, reference_mix, strict=True)),
        class_mix_p_value=chi_square_p(reference_mix, counts),
        low_confidence_per_min=low / minutes if minutes else math.nan,
        reference_low_confidence_per_min=profile.low_confidence_per_min,
    )


def _measure(name: str, reference: Distribution, values: npt.ArrayLike) -> SignalDrift:
    x = np.asarray(values, dtype=np.float64)
    finite = x[np.isfinite(x)]
    counts = bin_counts(reference.edges, finite)
    return SignalDrift(
        signal=name,
        psi=psi(reference.fractions, counts),
        fired=False,
        window_median=float(np.median(finite)) if finite.size else None,
        reference_median=reference.median,
        n=int(finite.size),
    )
