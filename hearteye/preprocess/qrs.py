"""QRS (R-peak) detection on the conditioned signal, and the one rule that places R peaks.

A vectorised Pan-Tompkins-style detector (Pan & Tompkins, IEEE TBME 1985):

1. Feature: a boxcar derivative (difference of two adjacent ``qrs_derivative_s`` moving sums, a
   band-pass peaking near 13 Hz at the defaults), squared, then a centred moving-window integral
   of ``qrs_integration_s``. All moving windows are running sums (compiled loops,
   :mod:`hearteye.preprocess.filter_kernels`).
2. Candidates: the integral's local maxima at least ``refractory_s`` apart (``find_peaks``);
   candidates whose peak-to-peak amplitude within ``peak_snap_s`` is below
   ``qrs_min_amplitude_mv`` are dropped (a flat line yields nothing).
3. Decision, one pass over the candidates (a few dozen for a 10-s strip): adaptive signal and noise
   levels learnt from the first 2 s; a candidate above noise + ``qrs_threshold`` x (signal - noise)
   is a beat, unless it follows a beat within ``qrs_twave_s`` with under ``qrs_twave_slope`` of its
   steepest slope (a T wave); a steep beat closely following a shallow one replaces it (a P wave).
   After a gap of ``qrs_searchback_rr`` x the mean of the last 8 RR intervals, the largest skipped
   candidate above ``qrs_searchback_threshold`` x threshold is taken (search back).
4. Every beat is snapped with :func:`snap_peaks`: to the largest absolute deflection of the
   conditioned signal within ``peak_snap_s`` -- where the MIT-BIH reference annotations sit.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np
import numpy.typing as npt
from scipy import signal as sps

from hearteye.errors import SignalError
from hearteye.preprocess.config import PreprocessConfig

IntArray = npt.NDArray[np.int64]

#: Initial signal and noise levels come from the feature's first seconds (s) ...
LEARNING_S = 2.0
#: ... and are then refined by a first decision pass over this much signal (s), after which the
#: detector starts again from the beginning, so the first beats of a strip are judged as well.
WARMUP_S = 8.0
#: RR interval assumed before two beats have been seen (s), for the search-back limit.
DEFAULT_RR_S = 1.0
#: RR intervals averaged for the search-back limit.
RR_HISTORY = 8
#: One beat moves the signal level towards its height capped at this multiple of the level, so a
#: few giant ectopic beats cannot lift the threshold above the normal beats that follow.
LEVEL_CLIP = 2.0

_EMPTY = np.empty(0, dtype=np.int64)
_EMPTY.flags.writeable = False


def detect_r_peaks(conditioned: npt.ArrayLike, config: PreprocessConfig) -> IntArray:
    """Sorted unique R-peak sample positions (at ``config.fs``) in a conditioned signal.

    ``conditioned`` is the output of :func:`hearteye.preprocess.conditioning.condition`. Works on
    anything from a 2-s strip to a whole record. A flat, empty or too short signal gives an empty
    array; a signal that is not 1-D or holds NaN/Inf raises :class:`SignalError` (``"signal"``).
    """
    x = _as_signal(conditioned)
    n = len(x)
    fs = config.fs
    if n < 3 or not np.any(x):
        return _EMPTY.copy()
    refractory = max(round(config.refractory_s * fs), 1)

    slope, feature = _feature(x, config)
    cand, _ = sps.find_peaks(feature, distance=refractory)
    if len(cand) == 0:
        return _EMPTY.copy()

    from hearteye.preprocess import qrs_kernels

    peaks: IntArray = qrs_kernels.beats_from_candidates(
        x,
        feature,
        slope,
        np.ascontiguousarray(cand, dtype=np.int64),
        _outward(_snap_radius(config)),
        float(config.qrs_min_amplitude_mv),
        max(int(LEARNING_S * fs), 1),
        int(WARMUP_S * fs),
        refractory,
        _rules(config),
        RR_HISTORY,
        LEVEL_CLIP,
    )
    return peaks


def snap_peaks(
    conditioned: npt.ArrayLike, peaks: npt.ArrayLike, config: PreprocessConfig
) -> IntArray:
    """Move each position to the largest absolute deflection within ``config.peak_snap_s``.

    The detector places its beats with the same rule, so beat windows line up identically whether
    the peaks come from reference annotations, from a caller or from :func:`detect_r_peaks`.
    One output per input, in input order (two inputs may snap to the same peak). Raises
    :class:`SignalError` (field ``"peaks"``) for positions outside the signal.
    """
    x = _as_signal(conditioned)
    try:
        p = np.asarray(peaks)
        if p.size == 0:
            return np.empty(0, dtype=np.int64)
        if p.ndim != 1 or not (
            np.issubdtype(p.dtype, np.integer)
            or (np.issubdtype(p.dtype, np.floating) and np.all(np.mod(p, 1) == 0))
        ):
            raise ValueError(f"shape {p.shape}, dtype {p.dtype}")
    except (TypeError, ValueError) as exc:
        raise SignalError("peaks", f"expected a 1-D sequence of sample positions ({exc})") from None
    p = p.astype(np.int64)
    if p.min() < 0 or p.max() >= len(x):
        raise SignalError(
            "peaks", f"positions {p.min()}..{p.max()} lie outside the signal (0..{len(x) - 1})"
        )
    window = _windows(p, _snap_radius(config), len(x))
    return window[np.arange(len(p)), np.abs(x[window]).argmax(axis=1)].astype(np.int64)


def match_beats(
    reference: npt.ArrayLike, detected: npt.ArrayLike, tolerance: int
) -> tuple[int, int, int]:
    """One-to-one matching of sorted beat positions within ``tolerance`` samples.

    Returns (true positives, false negatives, false positives). Greedy in time order, which is a
    maximum matching for points on a line.
    """
    ref = np.asarray(reference, dtype=np.int64).tolist()
    det = np.asarray(detected, dtype=np.int64).tolist()
    i = j = tp = 0
    while i < len(ref) and j < len(det):
        d = det[j] - ref[i]
        if d < -tolerance:
            j += 1
        elif d > tolerance:
            i += 1
        else:
            tp += 1
            i += 1
            j += 1
    return tp, len(ref) - tp, len(det) - tp


def _as_signal(conditioned: npt.ArrayLike) -> npt.NDArray[np.float64]:
    try:
        x = np.asarray(conditioned, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise SignalError("signal", f"not a numeric sequence ({exc})") from None
    if x.ndim != 1:
        raise SignalError("signal", f"expected one lead (a 1-D sequence), got shape {x.shape}")
    if not np.isfinite(x).all():
        raise SignalError("signal", "NaN or infinite samples: condition the signal first")
    return x


def _snap_radius(config: PreprocessConfig) -> int:
    return max(round(config.peak_snap_s * config.fs), 0)


def _windows(centres: npt.NDArray[np.int64], radius: int, n: int) -> npt.NDArray[np.intp]:
    """Sample indices within ``radius`` of each centre, clipped to the signal, one row per centre.

    Columns run outwards from the centre (0, -1, +1, -2, +2, ...), so ``argmax`` over a row breaks
    ties in favour of the sample nearest the centre.
    """
    return np.clip(centres[:, None] + _outward(radius), 0, n - 1)


@lru_cache(maxsize=8)
def _outward(radius: int) -> npt.NDArray[np.int64]:
    offsets = np.zeros(2 * radius + 1, dtype=np.int64)
    offsets[1::2] = -np.arange(1, radius + 1)
    offsets[2::2] = np.arange(1, radius + 1)
    offsets.flags.writeable = False
    return offsets


def _feature(
    x: npt.NDArray[np.float64], config: PreprocessConfig
) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]]:
    """(|boxcar derivative|, moving-window integral of its square), compiled
    (:func:`hearteye.preprocess.filter_kernels.qrs_feature`).

    The derivative at k is the mean of x[k+1 .. k+m] minus the mean of x[k-m .. k-1]; the integral
    is a centred ``qrs_integration_s`` moving average, zero beyond the signal.
    """
    from hearteye.preprocess import filter_kernels

    m = round(config.qrs_derivative_s * config.fs) // 2 * 2 + 1
    w = round(config.qrs_integration_s * config.fs) // 2 * 2 + 1
    slope: npt.NDArray[np.float64]
    feature: npt.NDArray[np.float64]
    slope, feature = filter_kernels.qrs_feature(np.ascontiguousarray(x), m, w)
    return slope, feature


def _rules(config: PreprocessConfig) -> tuple[float, float, float, float, float, float]:
    """The decision pass's rules (:func:`hearteye.preprocess.qrs_kernels.decide`): threshold
    fraction, T-wave window (samples), T-wave slope fraction, search-back RR multiple, search-back
    threshold fraction, default RR (samples)."""
    return (
        float(config.qrs_threshold),
        float(config.qrs_twave_s * config.fs),
        float(config.qrs_twave_slope),
        float(config.qrs_searchback_rr),
        float(config.qrs_searchback_threshold),
        float(DEFAULT_RR_S * config.fs),
    )
