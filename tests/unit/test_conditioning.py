"""Signal conditioning and the QRS detector on synthetic signals (no data needed)."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from scipy import signal as sps

from hearteye.errors import SignalError
from hearteye.preprocess.conditioning import condition, edge_margin, highpass_length
from hearteye.preprocess.config import PreprocessConfig
from hearteye.preprocess.qrs import detect_r_peaks, match_beats, snap_peaks

CONFIG = PreprocessConfig()
FS = CONFIG.fs


def synthetic_ecg(seconds: float, fs: float = FS, rr_s: float = 0.8, seed: int = 0) -> np.ndarray:
    """Narrow 1-mV R waves every ``rr_s``, a broad T wave after each, and a little noise."""
    t = np.arange(int(seconds * fs)) / fs
    x = np.zeros_like(t)
    for r in np.arange(0.4, seconds - 0.2, rr_s):
        x += 1.0 * np.exp(-0.5 * ((t - r) / 0.010) ** 2)
        x -= 0.15 * np.exp(-0.5 * ((t - r - 0.03) / 0.008) ** 2)
        x += 0.25 * np.exp(-0.5 * ((t - r - 0.28) / 0.05) ** 2)
    return x + 0.01 * np.random.default_rng(seed).standard_normal(len(t))


def sine(freq: float, seconds: float, amplitude: float = 1.0, fs: float = FS) -> np.ndarray:
    return amplitude * np.sin(2 * np.pi * freq * np.arange(int(seconds * fs)) / fs + 0.3)


# --- bad input --------------------------------------------------------------------------------


@pytest.mark.parametrize("fs", [99.9, 1000.1, 0, -360, float("nan"), float("inf"), "fast", None])
def test_out_of_range_or_invalid_rate_names_fs(fs: object) -> None:
    with pytest.raises(SignalError) as info:
        condition(np.zeros(3600), fs, CONFIG)  # type: ignore[arg-type]
    assert info.value.field == "fs"


@pytest.mark.parametrize(
    "signal",
    [
        np.zeros((2, 3600)),
        np.zeros((3600, 1)),
        np.float64(1.0),
        np.r_[np.zeros(100), np.nan, np.zeros(100)],
        np.r_[np.zeros(100), np.inf, np.zeros(100)],
        np.r_[np.zeros(100), -np.inf],
        np.zeros(100, dtype=complex),
        ["a", "b", "c"],
        [[1.0, 2.0], [3.0]],
        np.r_[np.zeros(100), 1e300, np.zeros(100)],  # found by tests/serving/test_fuzz.py
        np.r_[np.zeros(100), -1001.0, np.zeros(100)],  # not in mV
    ],
    ids=[
        "2-D",
        "column",
        "scalar",
        "nan",
        "inf",
        "-inf",
        "complex",
        "strings",
        "ragged",
        "huge",
        "not-mV",
    ],
)
def test_bad_signal_names_signal(signal: object) -> None:
    with pytest.raises(SignalError) as info:
        condition(signal, FS, CONFIG)  # type: ignore[arg-type]
    assert info.value.field == "signal"


def test_detector_rejects_non_1d_or_non_finite_input() -> None:
    for bad in (np.zeros((2, 10)), np.array([0.0, np.nan, 0.0])):
        with pytest.raises(SignalError) as info:
            detect_r_peaks(bad, CONFIG)
        assert info.value.field == "signal"


@pytest.mark.parametrize("peaks", [[-1], [3600], [1.5], np.zeros((2, 2), dtype=int)])
def test_snap_rejects_positions_outside_or_not_samples(peaks: object) -> None:
    with pytest.raises(SignalError) as info:
        snap_peaks(np.zeros(3600), peaks, CONFIG)  # type: ignore[arg-type]
    assert info.value.field == "peaks"


# --- edge cases ---------------------------------------------------------------------------------


@pytest.mark.parametrize("fs", [100, 200, 250, 360, 500, 1000])
def test_accepted_rates_give_the_canonical_rate(fs: int) -> None:
    out = condition(synthetic_ecg(10, fs=fs), fs, CONFIG)
    assert out.dtype == np.float64
    assert abs(len(out) - 10 * FS) <= 1


def test_empty_signal_gives_empty_output() -> None:
    out = condition([], FS, CONFIG)
    assert out.dtype == np.float64
    assert len(out) == 0
    peaks = detect_r_peaks(out, CONFIG)
    assert peaks.dtype == np.int64
    assert len(peaks) == 0
    assert len(snap_peaks(out, [], CONFIG)) == 0


@pytest.mark.parametrize(
    "signal",
    [
        np.zeros(3600),
        np.full(3600, 5.0),
        np.linspace(-1, 1, 3600),
        1e-4 * np.random.default_rng(1).standard_normal(3600),
        np.zeros(1),
        np.zeros(2),
        np.ones(10),
        synthetic_ecg(10)[:5],
    ],
    ids=["zeros", "constant", "ramp", "microvolt-noise", "one", "two", "ten", "five-samples"],
)
def test_flat_or_short_signal_gives_no_beats(signal: np.ndarray) -> None:
    peaks = detect_r_peaks(condition(signal, FS, CONFIG), CONFIG)
    assert peaks.dtype == np.int64
    assert len(peaks) == 0


# --- filtering --------------------------------------------------------------------------------


def test_bandpass_removes_wander_and_hum_and_keeps_the_qrs_band() -> None:
    seconds, mid = 20, slice(6 * FS, 14 * FS)

    def gain(freq: float) -> float:
        out = condition(sine(freq, seconds), FS, CONFIG)[mid]
        return float(np.sqrt(2 * np.mean(out**2)))

    assert gain(0.0) < 1e-9  # DC
    assert gain(0.1) < 0.01  # slow baseline wander
    assert gain(0.2) < 0.1
    assert gain(60.0) < 0.01  # mains hum
    assert gain(50.0) < 0.01
    for freq in (1.0, 5.0, 10.0, 20.0):  # P/T waves and the QRS band pass untouched
        assert gain(freq) == pytest.approx(1.0, abs=0.02)
    assert 0.4 < gain(40.0) < 0.6  # the upper cut-off sits at bandpass_high_hz


def test_highpass_cut_off_follows_the_config() -> None:
    assert highpass_length(FS, 0.5, 2) > highpass_length(FS, 1.0, 2)
    slow = dataclasses.replace(CONFIG, bandpass_low_hz=1.0)
    x = sine(0.5, 30)
    mid = slice(10 * FS, 20 * FS)
    assert (
        np.abs(condition(x, FS, slow)[mid]).max()
        < 0.5 * np.abs(condition(x, FS, CONFIG)[mid]).max()
    )


def test_slice_matches_whole_signal_away_from_edges() -> None:
    x = synthetic_ecg(60)
    whole = condition(x, FS, CONFIG)
    m = edge_margin(CONFIG)
    for start in (0, 1234, 20 * FS):
        part = condition(x[start : start + 10 * FS], FS, CONFIG)
        np.testing.assert_allclose(part[m:-m], whole[start + m : start + 10 * FS - m], atol=1e-9)


def test_conditioning_and_detection_are_pure_and_deterministic() -> None:
    x = synthetic_ecg(10)
    before = x.copy()
    a, b = condition(x, FS, CONFIG), condition(x, FS, CONFIG)
    np.testing.assert_array_equal(x, before)
    np.testing.assert_array_equal(a, b)
    a_copy = a.copy()
    np.testing.assert_array_equal(detect_r_peaks(a, CONFIG), detect_r_peaks(b, CONFIG))
    np.testing.assert_array_equal(a, a_copy)


# --- detection and snapping -------------------------------------------------------------------


@pytest.mark.parametrize("seconds", [2, 10, 120])
@pytest.mark.parametrize("rr_s", [0.4, 0.8, 1.5])
def test_detects_synthetic_beats_at_their_r_peaks(seconds: int, rr_s: float) -> None:
    x = synthetic_ecg(seconds, rr_s=rr_s)
    truth = np.round(np.arange(0.4, seconds - 0.2, rr_s) * FS).astype(np.int64)
    peaks = detect_r_peaks(condition(x, FS, CONFIG), CONFIG)
    assert np.all(np.diff(peaks) > 0)
    _, fn, fp = match_beats(truth, peaks, tolerance=2)
    assert (fn, fp) == (0, 0), (truth, peaks)


@pytest.mark.parametrize("fs", [200, 500])
def test_other_rates_find_the_same_beats(fs: int) -> None:
    x = synthetic_ecg(30)
    base = detect_r_peaks(condition(x, FS, CONFIG), CONFIG)
    g = np.gcd(fs, FS)
    copy = sps.resample_poly(x, fs // g, FS // g)
    other = detect_r_peaks(condition(copy, fs, CONFIG), CONFIG)
    assert match_beats(base, other, tolerance=2)[1:] == (0, 0)


def test_snap_moves_to_the_largest_deflection_within_the_radius() -> None:
    x = np.zeros(1000)
    x[500] = 1.0
    x[530] = -2.0  # larger deflection, negative, 30 samples later
    x[700] = 3.0  # outside the 18-sample radius of 560
    radius = round(CONFIG.peak_snap_s * FS)
    assert radius == 18
    out = snap_peaks(x, [515, 495, 545, 560, 0, 999, 685], CONFIG)
    assert out.dtype == np.int64
    # order and length kept; a flat neighbourhood leaves the position where it was
    np.testing.assert_array_equal(out, [530, 500, 530, 560, 0, 999, 700])


def test_detector_places_beats_where_snap_puts_them() -> None:
    x = condition(synthetic_ecg(10), FS, CONFIG)
    peaks = detect_r_peaks(x, CONFIG)
    np.testing.assert_array_equal(snap_peaks(x, peaks, CONFIG), peaks)
    np.testing.assert_array_equal(snap_peaks(x, peaks + 5, CONFIG), peaks)


def test_match_beats_is_one_to_one() -> None:
    assert match_beats([100, 200, 300], [101, 102, 299, 500], tolerance=5) == (2, 1, 2)
    assert match_beats([], [1, 2], tolerance=5) == (0, 0, 2)
    assert match_beats([1, 2], [], tolerance=5) == (0, 2, 0)
