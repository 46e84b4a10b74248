"""The drift statistics and the quality measures on synthetic data (no records needed)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from hearteye.model.wrapper import StripPrediction
from hearteye.monitoring.drift import chi_square_p, compare, psi
from hearteye.monitoring.profile import (
    LOW_CONFIDENCE,
    Distribution,
    ReferenceProfile,
    bin_counts,
    observe,
)
from hearteye.preprocess.config import PreprocessConfig
from hearteye.preprocess.fingerprint import synthetic_ecg
from hearteye.preprocess.pipeline import preprocess
from hearteye.preprocess.quality import QUALITY_MEASURES


def test_psi_is_zero_for_the_reference_and_grows_with_the_shift() -> None:
    reference = [0.25, 0.25, 0.25, 0.25]
    assert psi(reference, [25, 25, 25, 25]) == pytest.approx(0.0)
    small, large = psi(reference, [30, 25, 25, 20]), psi(reference, [70, 10, 10, 10])
    assert 0 < small < 0.1 < 0.25 < large
    assert math.isnan(psi(reference, [0, 0, 0, 0]))
    assert chi_square_p(reference, [25, 25, 25, 25]) == pytest.approx(1.0)
    assert chi_square_p(reference, [70, 10, 10, 10]) < 1e-6


def test_a_point_mass_is_its_own_bin_and_either_side_is_seen() -> None:
    dist = Distribution.from_values([360.0] * 50)
    assert dist.edges == (360.0,)
    assert dist.fractions == (0.0, 1.0, 0.0)
    assert bin_counts(dist.edges, [250.0, 360.0, 500.0, math.nan]).tolist() == [1, 1, 1]
    assert psi(dist.fractions, bin_counts(dist.edges, [360.0] * 10)) == pytest.approx(0.0)
    assert psi(dist.fractions, bin_counts(dist.edges, [250.0] * 10)) > 5


def test_quantile_bins_hold_equal_shares_and_nan_is_left_out() -> None:
    values = np.concatenate([np.random.default_rng(0).normal(size=1000), [np.nan] * 5])
    dist = Distribution.from_values(values)
    assert dist.n == 1000
    assert dist.missing == 5
    inner = [f for f in dist.fractions if f > 0]
    assert len(inner) == 10
    assert max(inner) - min(inner) < 0.01


def _prediction(signal: np.ndarray, proba_n: float) -> StripPrediction:
    strip = preprocess(signal, 360.0, PreprocessConfig(), quality=True)
    proba = np.zeros((len(strip), 5), np.float32)
    proba[:, 0] = proba_n
    proba[:, 1] = 1 - proba_n
    return StripPrediction(strip.samples, 360.0, proba, strip.quality)


def test_profile_round_trip_and_drift_by_gain_and_confidence() -> None:
    rng = np.random.default_rng(1)
    base = synthetic_ecg(360.0, 10.0)
    strips = [base * rng.uniform(0.9, 1.1) + rng.normal(0, 0.01, base.size) for _ in range(60)]
    observations = [observe(_prediction(s, 0.95), 10.0) for s in strips]
    profile = ReferenceProfile.build(observations, 10.0)
    assert ReferenceProfile.from_json(profile.to_json()) == profile
    assert set(profile.measures) == {*QUALITY_MEASURES, "low_confidence_per_min"}
    assert profile.class_fractions["N"] == pytest.approx(1.0)

    same = compare(profile, observations, psi_threshold=0.25, min_strips=50)
    assert same.enough_data
    assert same.fired == []
    louder = [observe(_prediction(3 * s, 0.95), 10.0) for s in strips]
    assert "amplitude_mv" in compare(profile, louder, psi_threshold=0.25, min_strips=50).fired
    unsure = [observe(_prediction(s, 0.45), 10.0) for s in strips]
    report = compare(profile, unsure, psi_threshold=0.25, min_strips=50)
    assert {"confidence", "low_confidence_per_min", "class_mix"} <= set(report.fired)
    assert report.low_confidence_per_min > 0 == profile.low_confidence_per_min
    assert LOW_CONFIDENCE > 0.45
    few = compare(profile, unsure[:10], psi_threshold=0.25, min_strips=50)
    assert not few.enough_data
    assert few.fired == []


def test_quality_changes_no_beat_and_needs_quality_on() -> None:
    signal = synthetic_ecg(250.0)
    plain = preprocess(signal, 250.0, PreprocessConfig())
    measured = preprocess(signal, 250.0, PreprocessConfig(), quality=True)
    assert plain.quality is None
    assert measured.quality is not None
    np.testing.assert_array_equal(plain.samples, measured.samples)
    np.testing.assert_array_equal(plain.beats.features, measured.beats.features)
    assert measured.quality.fs_hz == 250.0
    noisy = preprocess(
        signal + np.random.default_rng(2).normal(0, 0.05, signal.size),
        250.0,
        PreprocessConfig(),
        quality=True,
    )
    assert noisy.quality is not None
    # (the synthetic strip carries 0.02 mV of mains hum already)
    assert noisy.quality.noise_mv > 1.5 * measured.quality.noise_mv
    with pytest.raises(ValueError, match="quality"):
        observe(StripPrediction(plain.samples, 250.0, np.zeros((len(plain), 5), np.float32)), 12.0)
