"""Input-quality measures of one strip, computed by the preprocessing from what it already has.

:func:`hearteye.preprocess.pipeline.preprocess` fills them when asked (``quality=True``): training
computes them for the reference profile logged with every model, serving for each strip it
classifies, with this one implementation, so the two are comparable by construction.

- ``fs_hz``: the strip's sampling rate as given.
- ``amplitude_mv``: robust peak-to-peak of the conditioned signal (0.5th to 99.5th percentile,
  nearest rank): moves with the device's gain and the lead.
- ``baseline_wander_mv``: robust range (1st to 99th percentile) of what the band-pass's high-pass
  removed, i.e. the resampled, low-passed signal minus the conditioned one (below ~0.5 Hz).
- ``noise_mv``: robust standard deviation (1.4826 x median absolute deviation) of what the
  band-pass's low-pass removed (above ~40 Hz: EMG, mains, added white noise).
- ``heart_rate_bpm``: 60 / the median RR interval of the beats (NaN with fewer than two beats).
- ``unusable_fraction``: beats whose window runs past the strip's ends or whose QRS is below the
  detector's minimum amplitude, over all beats (NaN when there are none).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Final

import numpy as np
import numpy.typing as npt

from hearteye.preprocess.beats import FEATURE_NAMES, Beats
from hearteye.preprocess.conditioning import lowpass_taps
from hearteye.preprocess.config import PreprocessConfig

FloatArray = npt.NDArray[np.float64]

#: Names of the measures, in :class:`StripQuality`'s field order.
QUALITY_MEASURES: Final = (
    "fs_hz",
    "amplitude_mv",
    "baseline_wander_mv",
    "noise_mv",
    "heart_rate_bpm",
    "unusable_fraction",
)
_P2P_COLUMN: Final = FEATURE_NAMES.index("qrs_p2p_mv")
_MAD_TO_SD: Final = 1.4826


@dataclass(frozen=True)
class StripQuality:
    """The input-quality measures of one strip (see the module docstring)."""

    fs_hz: float
    amplitude_mv: float
    baseline_wander_mv: float
    noise_mv: float
    heart_rate_bpm: float
    unusable_fraction: float

    def as_dict(self) -> dict[str, float]:
        return asdict(self)


def measure_quality(
    fs: float,
    resampled: FloatArray,
    conditioned: FloatArray,
    beats: Beats,
    config: PreprocessConfig,
) -> StripQuality:
    """Quality of a strip from its resampled raw signal, its conditioned signal and its beats
    (all at ``config.fs``). The low-pass is the band-pass's own (compiled, mirrored ends), so
    ``lowpassed - conditioned`` is exactly what the band-pass's high-pass removed."""
    from hearteye.preprocess import filter_kernels

    taps = lowpass_taps(config.fs, config.bandpass_high_hz)
    lowpassed = filter_kernels.convolve_symmetric(np.ascontiguousarray(resampled), taps)
    high = resampled - lowpassed
    return StripQuality(
        fs_hz=float(fs),
        amplitude_mv=_spread(conditioned, 0.005),
        baseline_wander_mv=_spread(lowpassed - conditioned, 0.01),
        noise_mv=_MAD_TO_SD * _median(np.abs(high - _median(high))),
        heart_rate_bpm=_heart_rate(beats.peaks, config.fs),
        unusable_fraction=_unusable_fraction(beats, len(conditioned), config),
    )


def _spread(x: FloatArray, tail: float) -> float:
    """Distance between the ``tail`` and ``1 - tail`` quantiles (nearest rank: one partition)."""
    if not x.size:
        return 0.0
    lo = int(tail * (x.size - 1))
    hi = x.size - 1 - lo
    part = np.partition(x, (lo, hi))
    return float(part[hi] - part[lo])


def _median(x: FloatArray) -> float:
    """The lower median (nearest rank: one partition); 0 for an empty array."""
    if not x.size:
        return 0.0
    k = (x.size - 1) // 2
    return float(np.partition(x, k)[k])


def _heart_rate(peaks: npt.NDArray[np.int64], fs: int) -> float:
    if len(peaks) < 2:
        return float("nan")
    rr = np.sort(np.diff(peaks))
    return float(120.0 * fs / (rr[(len(rr) - 1) // 2] + rr[len(rr) // 2]))  # 60 / median RR


def _unusable_fraction(beats: Beats, n: int, config: PreprocessConfig) -> float:
    if not len(beats):
        return float("nan")
    cut = (beats.peaks < config.window_before) | (beats.peaks + config.window_after > n)
    flat = beats.features[:, _P2P_COLUMN] < config.qrs_min_amplitude_mv
    return float(np.count_nonzero(cut | flat) / len(beats))
