"""Conditioning and QRS detection on the real MIT-BIH records (``HEARTEYE_MITDB_DIR``)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from scipy import signal as sps

from hearteye.labels import DS2
from hearteye.preprocess.conditioning import condition, edge_margin
from hearteye.preprocess.config import PreprocessConfig
from hearteye.preprocess.qrs import detect_r_peaks, match_beats, snap_peaks
from hearteye.records import Record, load_record

pytestmark = pytest.mark.data

CONFIG = PreprocessConfig()
FS = CONFIG.fs
TOLERANCE = round(0.150 * FS)  # the usual 150 ms beat-matching window


@pytest.fixture(scope="module")
def ds2(mitdb_dir: Path) -> dict[str, tuple[Record, np.ndarray, np.ndarray]]:
    """Every DS2 record (MLII) with its conditioned signal and detected beats, computed once."""
    out = {}
    for name in DS2:
        record = load_record(mitdb_dir, name)
        assert record.fs == FS
        x = condition(record.signal, record.fs, CONFIG)
        out[name] = (record, x, detect_r_peaks(x, CONFIG))
    return out


def test_detector_agrees_with_the_reference_on_ds2(
    ds2: dict[str, tuple[Record, np.ndarray, np.ndarray]],
) -> None:
    totals = np.zeros(3, dtype=np.int64)
    per_record = {}
    for name, (record, _, peaks) in ds2.items():
        counts = match_beats(record.beat_samples, peaks, TOLERANCE)
        totals += counts
        tp, fn, fp = counts
        per_record[name] = (tp / (tp + fn), tp / (tp + fp))
    tp, fn, fp = totals
    sensitivity, predictivity = tp / (tp + fn), tp / (tp + fp)
    assert sensitivity >= 0.99, (sensitivity, per_record)
    assert predictivity >= 0.99, (predictivity, per_record)
    # No record may collapse either (worst cases: 210 Se ~98.9 %, 105 +P ~97 %).
    assert all(se >= 0.95 and ppv >= 0.95 for se, ppv in per_record.values()), per_record


def test_detector_on_10_second_strips_as_served(
    ds2: dict[str, tuple[Record, np.ndarray, np.ndarray]],
) -> None:
    """Serving conditions and detects each request's strip on its own: as good as whole records."""
    totals = np.zeros(3, dtype=np.int64)
    n = 10 * FS
    for record, _, _ in ds2.values():
        ref = record.beat_samples
        for start in range(0, len(record.signal) - n + 1, 3 * n):  # every third strip
            peaks = detect_r_peaks(condition(record.signal[start : start + n], FS, CONFIG), CONFIG)
            inside = ref[(ref >= start) & (ref < start + n)] - start
            totals += match_beats(inside, peaks, TOLERANCE)
    tp, fn, fp = totals
    assert tp / (tp + fn) >= 0.99
    assert tp / (tp + fp) >= 0.99


@pytest.mark.parametrize("name", ["100", "105", "210", "232"])
@pytest.mark.parametrize("fs", [200, 500])
def test_resampled_copies_give_beats_at_the_same_times(
    ds2: dict[str, tuple[Record, np.ndarray, np.ndarray]], name: str, fs: int
) -> None:
    record, _, base = ds2[name]
    g = np.gcd(fs, FS)
    copy = sps.resample_poly(record.signal, fs // g, FS // g)
    peaks = detect_r_peaks(condition(copy, fs, CONFIG), CONFIG)  # at the canonical rate again
    _, fn, fp = match_beats(base, peaks, TOLERANCE)
    assert fn + fp <= 0.001 * len(base), (fn, fp)
    # Matched beats sit at the same time: all but a handful within 2 samples (5.6 ms).
    j = np.clip(np.searchsorted(peaks, base), 1, len(peaks) - 1)
    nearest = np.minimum(np.abs(peaks[j] - base), np.abs(peaks[j - 1] - base))
    assert np.median(nearest) == 0
    assert np.count_nonzero(nearest > 2) <= 0.001 * len(base) + 1


def test_snapped_annotations_and_detections_coincide(
    ds2: dict[str, tuple[Record, np.ndarray, np.ndarray]],
) -> None:
    """Windows line up whether the R peaks come from the annotations or from the detector."""
    same = total = 0
    for record, x, peaks in ds2.values():
        snapped = snap_peaks(x, record.beat_samples, CONFIG)
        assert len(snapped) == len(record.beat_samples)
        j = np.clip(np.searchsorted(peaks, snapped), 0, len(peaks) - 1)
        same += int(np.count_nonzero(peaks[j] == snapped))
        total += len(snapped)
    assert same / total >= 0.99


def test_band_pass_removes_wander_and_hum_from_a_real_strip(mitdb_dir: Path) -> None:
    strip = load_record(mitdb_dir, "100").signal[60 * FS : 80 * FS]
    t = np.arange(len(strip)) / FS
    wander = 1.0 * np.sin(2 * np.pi * 0.1 * t + 0.4)
    hum = 0.3 * np.sin(2 * np.pi * 60 * t)
    clean = condition(strip, FS, CONFIG)
    mid = slice(6 * FS, 14 * FS)
    for noise in (wander, hum, wander + hum):
        residual = condition(strip + noise, FS, CONFIG)[mid] - clean[mid]
        assert np.abs(residual).max() < 0.02 * np.abs(noise).max()
    # ... and the beats are still found, in the same places.
    np.testing.assert_array_equal(
        detect_r_peaks(condition(strip + wander + hum, FS, CONFIG), CONFIG),
        detect_r_peaks(clean, CONFIG),
    )


@pytest.mark.parametrize("fs", [360, 500])
def test_10_second_slice_matches_the_whole_record_away_from_edges(mitdb_dir: Path, fs: int) -> None:
    signal = load_record(mitdb_dir, "203").signal[: 5 * 60 * FS]
    if fs != FS:
        g = np.gcd(fs, FS)
        signal = sps.resample_poly(signal, fs // g, FS // g)
    whole = condition(signal, fs, CONFIG)
    step = fs // np.gcd(fs, FS)  # slices start on samples that map onto the canonical grid
    margin = edge_margin(CONFIG) + (0 if fs == FS else 20)  # + the resampling filter's reach
    n_out = 10 * FS
    for start in (0, 37 * step * 50, len(signal) - 10 * fs - 3 * step):
        start -= start % step
        part = condition(signal[start : start + 10 * fs], fs, CONFIG)
        offset = start * FS // fs
        np.testing.assert_allclose(
            part[margin : n_out - margin],
            whole[offset + margin : offset + n_out - margin],
            atol=1e-9,
        )


def test_conditioning_is_deterministic_on_a_whole_record(
    ds2: dict[str, tuple[Record, np.ndarray, np.ndarray]],
) -> None:
    record, x, peaks = ds2["232"]
    np.testing.assert_array_equal(condition(record.signal, FS, CONFIG), x)
    np.testing.assert_array_equal(detect_r_peaks(x, CONFIG), peaks)
