"""The compiled beat features give the numpy formulation's bits, on real MIT-BIH records.

``tests/data/numpy_beats.py`` is the numpy formulation (the pipeline's code before its loops
were compiled); every array is compared with ``np.array_equal``: no tolerance.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from hearteye.preprocess import numeric_kernels
from hearteye.preprocess.beats import Beats, extract_beats, rr_features
from hearteye.preprocess.conditioning import condition
from hearteye.preprocess.config import PreprocessConfig
from hearteye.preprocess.qrs import detect_r_peaks, snap_peaks
from hearteye.records import load_record
from tests.data import numpy_beats

pytestmark = pytest.mark.data

CONFIG = PreprocessConfig()
#: Regular sinus rhythm (100), frequent ventricular ectopy and bigeminy (119, 208), atrial
#: fibrillation (201), and the supraventricular runs of 232.
RECORDS = ("100", "119", "201", "208", "232")


def assert_same(expected: Beats, actual: Beats, where: str) -> None:
    for field in ("peaks", "windows", "templates", "features"):
        a, b = getattr(expected, field), getattr(actual, field)
        assert a.dtype == b.dtype, f"{where}: {field} {a.dtype} {b.dtype}"
        assert a.shape == b.shape, f"{where}: {field} {a.shape} {b.shape}"
        if not np.array_equal(a, b):
            worst = float(np.max(np.abs(a.astype(np.float64) - b.astype(np.float64))))
            where_diff = np.argwhere(a != b)[:3].tolist()
            pytest.fail(f"{where}: {field} differs (max {worst:.3g} at {where_diff})")


@pytest.fixture(scope="module")
def conditioned(mitdb_dir: Path) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Each record's conditioned signal and its snapped reference beats (the training input)."""
    out = {}
    for name in RECORDS:
        record = load_record(mitdb_dir, name)
        x = condition(record.signal, record.fs, CONFIG)
        out[name] = (x, snap_peaks(x, record.beat_samples, CONFIG))
    return out


@pytest.mark.parametrize("name", RECORDS)
def test_whole_records_as_training_sees_them(
    conditioned: dict[str, tuple[np.ndarray, np.ndarray]], name: str
) -> None:
    x, peaks = conditioned[name]
    assert_same(numpy_beats.extract_beats(x, peaks, CONFIG), extract_beats(x, peaks, CONFIG), name)


@pytest.mark.parametrize("name", RECORDS)
def test_ten_second_strips_as_serving_sees_them(mitdb_dir: Path, name: str) -> None:
    """Strips cut from the record, conditioned alone, beats detected: one per 3 minutes, and
    the first 1, 2 and 3 beats of each (the edge cases of every neighbourhood)."""
    record = load_record(mitdb_dir, name)
    fs = round(record.fs)
    for start in range(0, len(record.signal) - 10 * fs, 180 * fs):
        x = condition(record.signal[start : start + 10 * fs], record.fs, CONFIG)
        peaks = detect_r_peaks(x, CONFIG)
        assert len(peaks) >= 3
        for subset in (peaks, peaks[:1], peaks[:2], peaks[:3]):
            where = f"{name} at {start / fs:.0f} s, {len(subset)} beats"
            assert_same(
                numpy_beats.extract_beats(x, subset, CONFIG),
                extract_beats(x, subset, CONFIG),
                where,
            )


def test_rr_features_match(conditioned: dict[str, tuple[np.ndarray, np.ndarray]]) -> None:
    _, peaks = conditioned["201"]
    for subset in (peaks, peaks[:1], peaks[:2], peaks[:300]):
        assert np.array_equal(numpy_beats.rr_features(subset, CONFIG), rr_features(subset, CONFIG))


def test_no_beats() -> None:
    beats = extract_beats(np.zeros(3600), np.zeros(0, dtype=np.int64), CONFIG)
    assert len(beats) == 0
    assert beats.windows.shape == (0, CONFIG.sequence_length)


@pytest.mark.parametrize("n", [*range(0, 40), 127, 128, 129, 136, 252, 257, 300, 1000, 4099])
def test_pairwise_sum_is_numpys(n: int) -> None:
    rng = np.random.default_rng(n)
    for scale in (1e-3, 1.0, 1e3):
        a = rng.standard_normal(n + 5) * scale
        assert 0.0 + numeric_kernels.pairwise_sum(a, 5, n) == np.add.reduce(a[5:])


def test_pairwise_sum_is_not_a_plain_loop() -> None:
    """The test above could not tell numpy's order from a left-to-right loop if the two agreed."""
    rng = np.random.default_rng(0)
    differs = 0
    for _ in range(50):
        a = rng.standard_normal(252)
        loop = 0.0
        for v in a:
            loop += v
        differs += loop != np.add.reduce(a)
    assert differs > 0
