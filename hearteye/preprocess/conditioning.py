"""Signal conditioning: validate, resample to the canonical rate, band-pass (baseline wander and noise)."""

from __future__ import annotations

from functools import lru_cache
from math import gcd

import numpy as np
import numpy.typing as npt
from scipy import signal as sps

from hearteye.errors import SignalError
from hearteye.preprocess.config import PreprocessConfig

FloatArray = npt.NDArray[np.float64]


def validate_signal(signal: npt.ArrayLike, fs: float, config: PreprocessConfig) -> FloatArray:
    """Return ``signal`` as a 1-D float64 array, or raise :class:`SignalError` naming the problem."""
    if not np.isfinite(fs) or not (config.min_input_fs <= fs <= config.max_input_fs):
        raise SignalError(
            "fs", f"sampling rate {fs} Hz is outside {config.min_input_fs:g}-{config.max_input_fs:g} Hz"
        )
    x = np.asarray(signal, dtype=np.float64)
    if x.ndim != 1:
        raise SignalError("signal", f"expected one lead (a 1-D sequence), got shape {x.shape}")
    if not np.all(np.isfinite(x)):
        bad = int(np.count_nonzero(~np.isfinite(x)))
        raise SignalError("signal", f"{bad} samples are NaN or infinite")
    return x


def resample(x: FloatArray, fs_in: float, fs_out: int) -> FloatArray:
    """Polyphase resampling from ``fs_in`` to ``fs_out`` (identity when equal)."""
    if fs_in == fs_out:
        return x
    up, down = _ratio(float(fs_in), fs_out)
    return np.asarray(sps.resample_poly(x, up, down), dtype=np.float64)


def condition(signal: npt.ArrayLike, fs: float, config: PreprocessConfig) -> FloatArray:
    """Validated, resampled to ``config.fs`` and zero-phase band-passed signal (mV)."""
    x = resample(validate_signal(signal, fs, config), fs, config.fs)
    sos = _bandpass(config.fs, config.bandpass_low_hz, config.bandpass_high_hz, config.bandpass_order)
    padlen = min(3 * (2 * len(sos) + 1), len(x) - 1)
    return np.asarray(sps.sosfiltfilt(sos, x, padlen=max(padlen, 0)), dtype=np.float64)


def _ratio(fs_in: float, fs_out: int) -> tuple[int, int]:
    num = round(fs_in * 1000)
    den = fs_out * 1000
    g = gcd(num, den)
    return den // g, num // g


@lru_cache(maxsize=16)
def _bandpass(fs: int, low: float, high: float, order: int) -> npt.NDArray[np.float64]:
    return np.asarray(sps.butter(order, [low, high], btype="bandpass", fs=fs, output="sos"))
