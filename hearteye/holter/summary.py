"""What is read back from a whole recording's beats: heart rate, and agreement with a reference."""

from __future__ import annotations

from typing import Any, Final

import numpy as np
import numpy.typing as npt

from hearteye.evaluation.annotated import DEFAULT_TOLERANCE_S, match_beats
from hearteye.evaluation.metrics import confusion
from hearteye.labels import AAMI_CLASSES

#: RR intervals outside this range (s) are gaps or double detections, not heart beats.
RR_RANGE_S: Final[tuple[float, float]] = (0.2, 3.0)


def _rr(samples: npt.NDArray[np.int64], fs: float) -> tuple[npt.NDArray[np.float64], ...]:
    rr = np.diff(samples) / fs
    valid = (rr >= RR_RANGE_S[0]) & (rr <= RR_RANGE_S[1])
    return rr[valid], (samples[1:] / fs)[valid]


def mean_heart_rate(samples: npt.NDArray[np.int64], fs: float) -> float | None:
    """60 / the mean RR interval (bpm), None without two consecutive beats."""
    rr, _ = _rr(samples, fs)
    return round(float(60.0 / rr.mean()), 1) if len(rr) else None


def heart_rate_trend(
    samples: npt.NDArray[np.int64], fs: float, duration_s: float, bin_s: float
) -> list[float | None]:
    """Mean heart rate (bpm) per ``bin_s`` bin (an RR interval counts in its second beat's bin);
    None for a bin without an RR interval."""
    n_bins = max(1, int(np.ceil(duration_s / bin_s)))
    rr, at = _rr(samples, fs)
    index = np.minimum((at // bin_s).astype(np.int64), n_bins - 1)
    total = np.bincount(index, weights=rr, minlength=n_bins)
    count = np.bincount(index, minlength=n_bins)
    return [
        round(float(60.0 * c / t), 1) if c else None
        for t, c in zip(total.tolist(), count.tolist(), strict=True)
    ]


def agreement(
    reference_samples: npt.NDArray[np.int64],
    reference_labels: npt.NDArray[np.int8],
    samples: npt.NDArray[np.int64],
    classes: npt.NDArray[np.intp],
    fs: float,
    tolerance_s: float = DEFAULT_TOLERANCE_S,
) -> dict[str, Any]:
    """Model beats against reference beats, matched as ``ml evaluate`` matches them (EC57's
    150 ms window): per class the reference count, sensitivity and positive predictivity over
    matched beats, and the beats only one side has."""
    ref_idx, det_idx = match_beats(reference_samples, samples, fs, tolerance_s)
    cm = confusion(reference_labels[ref_idx], classes[det_idx])
    k = len(AAMI_CLASSES)
    missed = np.bincount(
        np.delete(reference_labels.astype(np.int64), ref_idx), minlength=k
    ).tolist()
    per_class = {}
    for i, label in enumerate(AAMI_CLASSES):
        tp = int(cm[i, i])
        ref_total = int(cm[i].sum())
        predicted = int(cm[:, i].sum())
        per_class[label] = {
            "reference": int(np.count_nonzero(reference_labels == i)),
            "matched": ref_total,
            "agreed": tp,
            "sensitivity": round(tp / ref_total, 4) if ref_total else None,
            "ppv": round(tp / predicted, 4) if predicted else None,
        }
    return {
        "tolerance_s": tolerance_s,
        "matched": len(ref_idx),
        "missed": int(sum(missed)),
        "extra": int(len(samples) - len(det_idx)),
        "agreement": per_class,
    }
