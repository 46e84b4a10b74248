"""Windows over a whole recording, heart-rate trend, agreement: pure functions."""

from __future__ import annotations

import itertools

import numpy as np

from hearteye.holter import BeatTable, agreement, heart_rate_trend, mean_heart_rate, plan_windows


def test_windows_cover_every_sample_once_with_context() -> None:
    fs, n = 360.0, int(360 * 3600 * 1.01)  # 60.6 min: the last 36 s join the window before
    windows = plan_windows(n, fs, window_s=600, context_s=30)
    assert len(windows) == 6
    assert windows[0].start == 0
    assert windows[-1].stop == n
    assert all(a.stop == b.start for a, b in itertools.pairwise(windows))
    assert windows[0].lo == 0
    assert windows[1].lo == windows[1].start - 30 * 360
    assert windows[-1].hi == n
    assert plan_windows(3600, 360.0)[0] == plan_windows(3600, 360.0)[-1]  # short: one window


def test_heart_rate_trend_and_mean() -> None:
    fs = 360.0
    samples = np.arange(0, 60 * fs, 0.75 * fs).astype(np.int64)  # 80 bpm for a minute
    samples = np.concatenate([samples, samples[-1] + np.arange(1, 11) * int(0.5 * fs)])  # 120 bpm
    trend = heart_rate_trend(samples, fs, duration_s=70.0, bin_s=10.0)
    assert trend[:5] == [80.0] * 5
    assert trend[6] == 120.0
    assert mean_heart_rate(samples[:20], fs) == 80.0
    assert mean_heart_rate(samples[:1], fs) is None
    gap = np.array([0, 10 * 360], np.int64)  # a 10-s gap is not an RR interval
    assert heart_rate_trend(gap, fs, 20.0, 10.0) == [None, None]


def test_agreement_per_class() -> None:
    fs = 360.0
    ref = np.array([100, 400, 700, 1000], np.int64)
    ref_labels = np.array([0, 0, 2, 1], np.int8)  # N N V S
    det = np.array([102, 398, 705, 1500], np.int64)  # last reference missed, one extra
    proba = np.eye(5, dtype=np.float32)[[0, 2, 2, 0]]
    table = BeatTable(det, proba, fs)
    out = agreement(ref, ref_labels, table.samples, table.classes, fs)
    assert (out["matched"], out["missed"], out["extra"]) == (3, 1, 1)
    assert out["agreement"]["N"]["sensitivity"] == 0.5
    assert out["agreement"]["V"]["ppv"] == 0.5
    assert out["agreement"]["S"]["matched"] == 0
