"""The compiled filters give scipy.ndimage's bits (no tolerance), edges and short signals included."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage

from hearteye.preprocess import filter_kernels
from hearteye.preprocess.conditioning import SMOOTHER_PASSES, highpass_length, lowpass_taps
from hearteye.preprocess.config import PreprocessConfig
from hearteye.preprocess.fingerprint import synthetic_ecg

LENGTHS = [1, 2, 5, 60, 207, 720, 3600, 20000]


@pytest.mark.parametrize("n", LENGTHS)
@pytest.mark.parametrize("size", [1, 3, 9, 55, 415, 1001])
@pytest.mark.parametrize("mode", ["reflect", "constant"])
def test_uniform_filter_is_scipys(n: int, size: int, mode: str) -> None:
    x = np.random.default_rng(n * size).standard_normal(n) * 3.0
    expected = ndimage.uniform_filter1d(x, size, mode=mode)
    assert np.array_equal(filter_kernels.uniform_filter(x, size, mode == "constant"), expected)


@pytest.mark.parametrize("n", LENGTHS)
@pytest.mark.parametrize("fs", [250, 360, 500])
def test_convolution_is_scipys(n: int, fs: int) -> None:
    taps = lowpass_taps(fs, 40.0)
    x = np.random.default_rng(n).standard_normal(n)
    expected = ndimage.convolve1d(x, taps, mode="reflect")
    assert np.array_equal(filter_kernels.convolve_symmetric(x, taps), expected)


def test_the_convolution_is_not_a_correlation() -> None:
    """The low-pass taps are symmetric only to the last bits: reversing them shows in the output,
    so the test above tells convolution from correlation."""
    taps = np.asarray(lowpass_taps(360, 40.0))
    assert not np.array_equal(taps, taps[::-1])
    x = np.random.default_rng(0).standard_normal(3600)
    assert not np.array_equal(
        filter_kernels.convolve_symmetric(x, taps),
        filter_kernels.convolve_symmetric(x, np.ascontiguousarray(taps[::-1])),
    )


@pytest.mark.parametrize("fs", [360.0, 250.0])
def test_bandpass_is_the_scipy_cascade(fs: float) -> None:
    config = PreprocessConfig()
    x = synthetic_ecg(fs, 30.0) + np.random.default_rng(1).standard_normal(round(30 * fs)) * 0.05
    length = highpass_length(config.fs, config.bandpass_low_hz, config.bandpass_order)
    high = x
    for _ in range(config.bandpass_order):
        smooth = high
        for _ in range(SMOOTHER_PASSES):
            smooth = ndimage.uniform_filter1d(smooth, length, mode="reflect")
        high = high - smooth
    taps = lowpass_taps(config.fs, config.bandpass_high_hz)
    expected = ndimage.convolve1d(high, taps, mode="reflect")
    actual = filter_kernels.bandpass(
        x, length, config.bandpass_order, SMOOTHER_PASSES, np.asarray(taps)
    )
    assert np.array_equal(actual, expected)
