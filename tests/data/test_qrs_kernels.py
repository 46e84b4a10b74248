"""The compiled candidate handling of the QRS detector gives the numpy formulation's R peaks.

``tests/data/numpy_qrs.py`` is the detector as it was before its candidate handling (windows,
amplitude check, R-peak placement, learnt levels, T-wave rule at the start) was compiled; both
must return the same positions: whole records, 10-s strips, short pieces, three rates.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from scipy.signal import resample_poly

from hearteye.preprocess.conditioning import condition
from hearteye.preprocess.config import PreprocessConfig
from hearteye.preprocess.fingerprint import synthetic_ecg
from hearteye.preprocess.qrs import detect_r_peaks
from hearteye.records import load_record
from tests.data import numpy_qrs

pytestmark = pytest.mark.data

#: Sinus rhythm (100), ventricular ectopy and bigeminy (119, 208), atrial fibrillation (201),
#: supraventricular runs (232), paced beats (107), noise and artefact (105).
RECORDS = ("100", "105", "107", "119", "201", "208", "232")


def _pieces(signal: np.ndarray, fs: float) -> list[np.ndarray]:
    strip = round(10 * fs)
    starts = range(0, len(signal) - strip, round(120 * fs))
    return [
        signal,
        *(signal[s : s + strip] for s in starts),
        signal[: round(2 * fs)],
        signal[:100],
        signal[:7],
        signal[5000 : 5000 + strip] * 0.01,  # under the amplitude floor
    ]


@pytest.mark.parametrize("fs", [360, 250, 500])
def test_compiled_candidates_give_the_numpy_peaks(mitdb_dir: Path, fs: int) -> None:
    config = PreprocessConfig(fs=fs)
    compared = found = 0
    for name in RECORDS:
        record = load_record(mitdb_dir, name)
        signal = record.signal if fs == 360 else resample_poly(record.signal, fs, 360)
        for piece in _pieces(signal, fs):
            x = condition(piece, fs, config)
            expected = numpy_qrs.detect_r_peaks(x, config)
            actual = detect_r_peaks(x, config)
            assert actual.dtype == expected.dtype == np.int64
            assert np.array_equal(actual, expected), f"{name} at {fs} Hz, {len(piece)} samples"
            compared += 1
            found += len(actual)
    assert compared > 100  # real work, not empty answers
    assert found > 2000 * len(RECORDS)


def test_ties_and_levels_on_quantised_signals() -> None:
    """Signals on a coarse grid (ties within every window: the rule that the sample nearest the
    candidate wins must hold) with noise of several sizes (the learnt levels decide borderline
    candidates)."""
    config = PreprocessConfig()
    differ = []
    for seed in range(60):
        rng = np.random.default_rng(seed)
        x = synthetic_ecg(360.0, 10.0) * rng.uniform(0.2, 2.0)
        x = x + rng.standard_normal(len(x)) * rng.uniform(0.0, 0.3)
        x = np.round(x / 0.05) * 0.05
        if not np.array_equal(numpy_qrs.detect_r_peaks(x, config), detect_r_peaks(x, config)):
            differ.append(seed)
    assert differ == []
