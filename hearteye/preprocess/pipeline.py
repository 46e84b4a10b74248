"""The one preprocessing entry point: raw single-lead ECG (mV, any supported rate) -> per-beat inputs.

Training calls it with the reference annotations as ``r_peaks``; the logged model calls it with the
caller's ``r_peaks`` or none (then the QRS detector finds them). Same code, same output.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from hearteye.errors import SignalError
from hearteye.preprocess.beats import Beats, extract_beats
from hearteye.preprocess.conditioning import condition_stages
from hearteye.preprocess.config import PreprocessConfig
from hearteye.preprocess.qrs import detect_r_peaks, snap_peaks
from hearteye.preprocess.quality import StripQuality, measure_quality

IntArray = npt.NDArray[np.int64]


@dataclass(frozen=True)
class PreprocessedStrip:
    """Beats of one strip: model inputs plus each beat's position in the *input's* sample rate."""

    beats: Beats
    samples: IntArray  # positions in the caller's sampling rate
    fs: float
    #: Input-quality measures, when asked for (``preprocess(..., quality=True)``).
    quality: StripQuality | None = None

    def __len__(self) -> int:
        return len(self.samples)

    @property
    def times_s(self) -> npt.NDArray[np.float64]:
        return np.asarray(self.samples / self.fs, dtype=np.float64)


def preprocess(
    signal: npt.ArrayLike,
    fs: float,
    config: PreprocessConfig,
    r_peaks: npt.ArrayLike | None = None,
    *,
    quality: bool = False,
) -> PreprocessedStrip:
    """Condition ``signal``, find (or snap the given) R peaks, and extract windows and features;
    with ``quality``, also the strip's input-quality measures (:mod:`hearteye.preprocess.quality`).

    Raises :class:`SignalError` naming the field for an unusable rate, signal or peak list.
    """
    resampled, x = condition_stages(signal, fs, config)  # quality needs the resampled one too
    n_in = int(np.shape(signal)[0])
    if len(x) < config.window_length:
        raise SignalError(
            "signal",
            f"{n_in} samples ({n_in / fs:.2f} s) is shorter than one beat window "
            f"({config.window_before_s + config.window_after_s:g} s)",
        )
    scale = config.fs / fs
    if r_peaks is None:
        peaks = detect_r_peaks(x, config)
        samples = np.minimum(np.round(peaks / scale).astype(np.int64), n_in - 1)
    else:
        samples = _validate_peaks(r_peaks, n_in)
        canonical = np.minimum(np.round(samples * scale).astype(np.int64), len(x) - 1)
        peaks = snap_peaks(x, canonical, config)
    beats = extract_beats(x, peaks, config)
    measured = measure_quality(fs, resampled, x, beats, config) if quality else None
    return PreprocessedStrip(beats=beats, samples=samples, fs=float(fs), quality=measured)


def _validate_peaks(r_peaks: npt.ArrayLike, n: int) -> IntArray:
    arr = np.asarray(r_peaks)
    if arr.ndim != 1:
        raise SignalError("r_peaks", f"expected a list of sample positions, got shape {arr.shape}")
    if arr.size == 0:
        return np.zeros(0, dtype=np.int64)
    if not np.issubdtype(arr.dtype, np.number) or not np.all(np.isfinite(arr)):
        raise SignalError("r_peaks", "positions must be finite numbers")
    if np.any(arr != np.round(arr)):
        raise SignalError("r_peaks", "positions must be whole sample indices")
    out = arr.astype(np.int64)
    if out.min() < 0 or out.max() >= n:
        raise SignalError("r_peaks", f"positions must lie within the signal (0 to {n - 1})")
    if np.any(np.diff(out) <= 0):
        raise SignalError("r_peaks", "positions must be strictly increasing")
    return out
