"""The QRS detector's candidate handling as numpy code: the oracle for the compiled kernel.

This is ``hearteye.preprocess.qrs.detect_r_peaks`` as it was before steps 2-4 (after
``find_peaks``) became :func:`hearteye.preprocess.qrs_kernels.beats_from_candidates`, kept
verbatim (the decision pass was already compiled). ``tests/data/test_qrs_kernels.py`` checks that
both give the same positions.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
from scipy import signal as sps

from hearteye.preprocess import qrs_kernels
from hearteye.preprocess.config import PreprocessConfig
from hearteye.preprocess.qrs import (
    LEARNING_S,
    LEVEL_CLIP,
    RR_HISTORY,
    WARMUP_S,
    _as_signal,
    _feature,
    _rules,
    _snap_radius,
    _windows,
)

IntArray = npt.NDArray[np.int64]


def detect_r_peaks(conditioned: npt.ArrayLike, config: PreprocessConfig) -> IntArray:
    x = _as_signal(conditioned)
    n = len(x)
    fs = config.fs
    if n < 3 or not np.any(x):
        return np.empty(0, dtype=np.int64)
    refractory = max(round(config.refractory_s * fs), 1)

    slope, feature = _feature(x, config)
    cand, _ = sps.find_peaks(feature, distance=refractory)
    if len(cand) == 0:
        return np.empty(0, dtype=np.int64)

    window = _windows(cand, _snap_radius(config), n)
    seg = x[window]
    big = seg.max(axis=1) - seg.min(axis=1) >= config.qrs_min_amplitude_mv
    if not big.any():
        return np.empty(0, dtype=np.int64)
    cand, window, seg = cand[big], window[big], seg[big]
    r_peak = window[np.arange(len(cand)), np.abs(seg).argmax(axis=1)]

    pos, height = np.ascontiguousarray(cand, dtype=np.int64), feature[cand]
    steep = slope[window].max(axis=1)
    learn = feature[: max(int(LEARNING_S * fs), 1)]
    levels = (0.25 * float(learn.max()), 0.5 * float(learn.mean()))
    warm = int(WARMUP_S * fs)
    k = int(np.searchsorted(cand, warm))
    _, levels = _decide(pos[:k], height[:k], steep[:k], min(n, warm), levels, refractory, config)
    beats, _ = _decide(pos, height, steep, n, levels, refractory, config)
    if len(beats) > 1 and pos[beats[0]] < config.qrs_twave_s * fs:
        others = np.sort(steep[beats[1:]])
        median = (others[(len(others) - 1) // 2] + others[len(others) // 2]) / 2
        if steep[beats[0]] < config.qrs_twave_slope * median:
            beats = beats[1:]
    return np.unique(r_peak[beats]).astype(np.int64)


def _decide(
    pos: IntArray,
    height: npt.NDArray[np.float64],
    steep: npt.NDArray[np.float64],
    n: int,
    levels: tuple[float, float],
    refractory: int,
    config: PreprocessConfig,
) -> tuple[IntArray, tuple[float, float]]:
    beats, spk, npk = qrs_kernels.decide(
        pos, height, steep, n, levels[0], levels[1], refractory, _rules(config), RR_HISTORY,
        LEVEL_CLIP,
    )  # fmt: skip
    return beats, (float(spk), float(npk))
