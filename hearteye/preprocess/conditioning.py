"""Signal conditioning: validate, resample to the canonical rate, zero-phase band-pass (mV).

Every filter here has a short, finite memory and uses no whole-signal statistic, so conditioning a
10-s slice of a record gives the same samples as conditioning the whole record, except within
:func:`edge_margin` samples of the slice's ends (where the slice's edge padding differs).

- Resampling: polyphase FIR (``scipy.signal.resample_poly``'s default Kaiser design, cached), with
  the signal mirrored at its ends instead of zero-padded.
- High-pass (``bandpass_low_hz``, ``bandpass_order``): ``(1 - S) ** order`` where ``S`` is a
  near-Gaussian smoother (three cascaded centred moving averages, i.e. running sums) whose length
  puts the high-pass's -3 dB point at ``bandpass_low_hz`` (1.15 s at 0.5 Hz). At order 2 it falls
  off as f**4 below the cut-off, like the order-2 Butterworth run forward and backward that it
  replaces: 0.1 Hz wander is attenuated ~250 times, 0.2 Hz ~18 times; flat within 1 % above 0.7 Hz.
- Low-pass (``bandpass_high_hz``): a symmetric (zero-phase) Hamming-window FIR of about 1/6 s
  (61 taps at 360 Hz): -6 dB at 40 Hz and more than 50 dB of attenuation from 50 Hz up, so mains
  hum (50/60 Hz) and EMG noise are removed.
"""

from __future__ import annotations

import math
from functools import lru_cache
from math import gcd

import numpy as np
import numpy.typing as npt
from scipy import signal as sps
from scipy.optimize import brentq

from hearteye.errors import SignalError
from hearteye.preprocess.config import PreprocessConfig

FloatArray = npt.NDArray[np.float64]

#: Length of the low-pass FIR in seconds (odd number of taps at the canonical rate).
LOWPASS_SPAN_S = 1 / 6
#: Moving averages cascaded into the high-pass's baseline smoother (3: close to a Gaussian).
SMOOTHER_PASSES = 3
#: How every filter extends the signal beyond its ends (half-sample mirror: d c b a | a b c d).
_RESAMPLE_EDGE_MODE = "symmetric"  # upfirdn's name for the same half-sample mirror


#: Largest accepted |sample| (mV). A surface ECG stays within a few mV; beyond a volt the input is
#: in other units, and values near the float range overflowed the float32 features (found by
#: tests/serving/test_fuzz.py: 1e300 mV gave an internal error instead of a 422).
MAX_ABS_MV = 1000.0


def validate_signal(signal: npt.ArrayLike, fs: float, config: PreprocessConfig) -> FloatArray:
    """Return ``signal`` as a 1-D float64 array, or raise :class:`SignalError` naming the field."""
    try:
        rate = float(fs)
    except (TypeError, ValueError):
        raise SignalError("fs", f"sampling rate must be a number, got {fs!r}") from None
    if not math.isfinite(rate) or not (config.min_input_fs <= rate <= config.max_input_fs):
        raise SignalError(
            "fs",
            f"sampling rate {fs} Hz is outside {config.min_input_fs:g}-{config.max_input_fs:g} Hz",
        )
    try:
        raw = np.asarray(signal)
        if np.iscomplexobj(raw):
            raise SignalError("signal", "complex samples: expected real voltages (mV)")
        x = raw.astype(np.float64, copy=False)
    except (TypeError, ValueError) as exc:
        raise SignalError("signal", f"not a numeric sequence ({exc})") from None
    if x.ndim != 1:
        raise SignalError("signal", f"expected one lead (a 1-D sequence), got shape {x.shape}")
    if not np.isfinite(x).all():
        bad = int(np.count_nonzero(~np.isfinite(x)))
        raise SignalError("signal", f"{bad} samples are NaN or infinite")
    if len(x) and (peak := float(np.max(np.abs(x)))) > MAX_ABS_MV:
        raise SignalError(
            "signal",
            f"a sample of {peak:.6g} mV is beyond ±{MAX_ABS_MV:g} mV: the signal is not in "
            "millivolts (microvolts or raw ADC counts?)",
        )
    return x


def resample(x: FloatArray, fs_in: float, fs_out: int) -> FloatArray:
    """Polyphase resampling from ``fs_in`` to ``fs_out`` (identity when equal)."""
    up, down = _ratio(float(fs_in), fs_out)
    if up == down or len(x) == 0:
        return x
    return np.asarray(
        sps.resample_poly(
            x, up, down, window=_resample_taps(up, down), padtype=_RESAMPLE_EDGE_MODE
        ),
        dtype=np.float64,
    )


def bandpass(x: FloatArray, config: PreprocessConfig) -> FloatArray:
    """Zero-phase band-pass of a signal already at ``config.fs`` (see the module docstring).

    Compiled (:mod:`hearteye.preprocess.filter_kernels`): the same samples as
    ``scipy.ndimage``'s ``uniform_filter1d`` and ``convolve1d`` in "reflect" mode.
    """
    if len(x) == 0:
        return np.array(x, dtype=np.float64)
    from hearteye.preprocess import filter_kernels

    out: FloatArray = filter_kernels.bandpass(
        np.ascontiguousarray(x, dtype=np.float64),
        highpass_length(config.fs, config.bandpass_low_hz, config.bandpass_order),
        config.bandpass_order,
        SMOOTHER_PASSES,
        lowpass_taps(config.fs, config.bandpass_high_hz),
    )
    return out


def condition(signal: npt.ArrayLike, fs: float, config: PreprocessConfig) -> FloatArray:
    """Validated, resampled to ``config.fs`` and zero-phase band-passed signal (mV).

    Pure and deterministic. Raises :class:`SignalError` (field ``"fs"`` or ``"signal"``) for a
    rate outside ``min_input_fs``-``max_input_fs``, a signal that is not 1-D or not real numbers,
    or NaN/Inf samples. An empty signal gives an empty array.
    """
    return condition_stages(signal, fs, config)[1]


def condition_stages(
    signal: npt.ArrayLike, fs: float, config: PreprocessConfig
) -> tuple[FloatArray, FloatArray]:
    """:func:`condition` keeping its intermediate: (resampled, resampled and band-passed)."""
    resampled = resample(validate_signal(signal, fs, config), fs, config.fs)
    return resampled, bandpass(resampled, config)


def edge_margin(config: PreprocessConfig) -> int:
    """Samples at each end of a conditioned slice that may differ from the whole record's (input
    already at ``config.fs``): the one-sided memory of the band-pass. Further in they are equal."""
    length = highpass_length(config.fs, config.bandpass_low_hz, config.bandpass_order)
    taps = lowpass_taps(config.fs, config.bandpass_high_hz)
    return config.bandpass_order * SMOOTHER_PASSES * (length // 2) + len(taps) // 2


@lru_cache(maxsize=16)
def highpass_length(fs: int, low_hz: float, order: int) -> int:
    """Odd moving-average length L that puts the -3 dB point of (1 - S) ** order at ``low_hz``,
    S being ``SMOOTHER_PASSES`` cascaded L-sample moving averages:
    (1 - sinc(low_hz L / fs) ** SMOOTHER_PASSES) ** order = 1 / sqrt(2)."""
    if not 0 < low_hz < fs / 2 or order < 1:
        raise SignalError("config", f"no high-pass for bandpass_low_hz={low_hz}, order={order}")
    target = 1 - 2 ** (-0.5 / order)  # S's gain at the cut-off
    u = brentq(lambda v: np.sinc(v) ** SMOOTHER_PASSES - target, 1e-6, 1.0)
    return max(round(u * fs / low_hz) // 2 * 2 + 1, 1)


@lru_cache(maxsize=16)
def lowpass_taps(fs: int, high_hz: float) -> FloatArray:
    """Symmetric Hamming-window low-pass FIR, -6 dB at ``high_hz`` (unit gain at DC)."""
    if not 0 < high_hz < fs / 2:
        raise SignalError("config", f"bandpass_high_hz={high_hz} must lie below fs/2 = {fs / 2}")
    numtaps = round(fs * LOWPASS_SPAN_S) // 2 * 2 + 1
    taps = np.asarray(sps.firwin(numtaps, high_hz, fs=fs), dtype=np.float64)
    taps.flags.writeable = False
    return taps


def _ratio(fs_in: float, fs_out: int) -> tuple[int, int]:
    num = round(fs_in * 1000)
    den = fs_out * 1000
    g = gcd(num, den)
    return den // g, num // g


@lru_cache(maxsize=16)
def _resample_taps(up: int, down: int) -> FloatArray:
    """The FIR ``resample_poly`` designs on every call by default (Kaiser, beta 5), cached."""
    max_rate = max(up, down)
    taps = np.asarray(
        sps.firwin(2 * 10 * max_rate + 1, 1.0 / max_rate, window=("kaiser", 5.0)), dtype=np.float64
    )
    taps.flags.writeable = False
    return taps
