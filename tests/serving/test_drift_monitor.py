"""The per-worker drift monitor alone: the window's time and size limits, the gauges of the served
versions, and the blanking of versions no longer served (synthetic strips, no model)."""

from __future__ import annotations

import math
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from hearteye.model.wrapper import StripInput, StripPrediction
from hearteye.monitoring.profile import ReferenceProfile, observe
from hearteye.preprocess.config import PreprocessConfig
from hearteye.preprocess.fingerprint import synthetic_ecg
from hearteye.preprocess.pipeline import preprocess
from serving.drift import DriftMonitor
from serving.loading import LoadedModel
from serving.metrics import ServingMetrics
from serving.settings import ServingSettings

SIGNAL = synthetic_ecg(360.0, 10.0)


def _prediction(scale: float = 1.0) -> StripPrediction:
    strip = preprocess(scale * SIGNAL, 360.0, PreprocessConfig(), quality=True)
    proba = np.tile(np.array([0.9, 0.1, 0, 0, 0], np.float32), (len(strip), 1))
    return StripPrediction(strip.samples, 360.0, proba, strip.quality)


def _loaded(version: str, profile: ReferenceProfile) -> LoadedModel:
    model: Any = None
    return LoadedModel(
        "m", version, None, model, "xgboost", datetime.now(UTC), 0.0, "registry", 1, profile
    )


class Clock:
    now = 0.0

    def __call__(self) -> float:
        return self.now


def test_window_limits_gauges_and_blanking(tmp_path: Path) -> None:
    profile = ReferenceProfile.build([observe(_prediction(), 10.0)] * 5, 10.0)
    settings = ServingSettings(
        home=tmp_path, drift_window_s=60.0, drift_window_max_strips=4, drift_min_strips=2
    )
    metrics = ServingMetrics()
    clock = Clock()
    monitor = DriftMonitor(settings, metrics, clock=clock)
    v1, v2 = _loaded("1", profile), _loaded("2", profile)
    strip = StripInput(SIGNAL, 360.0)

    monitor.observe(v1, [strip] * 3, [_prediction()] * 3)
    clock.now = 50.0
    monitor.observe(v1, [strip] * 3, [_prediction(3.0)] * 3)
    assert len(monitor.window("m", "1")) == 4  # at most drift_window_max_strips
    clock.now = 100.0
    assert len(monitor.window("m", "1")) == 3  # older than drift_window_s: gone

    monitor.refresh([v1])
    registry = metrics.registry
    fired = registry.get_sample_value(
        "hearteye_drift_signal_fired", {"model": "m", "version": "1", "signal": "amplitude_mv"}
    )
    assert fired == 1.0
    assert (
        registry.get_sample_value("hearteye_drift_window_strips", {"model": "m", "version": "1"})
        == 3
    )

    monitor.refresh([v2])  # v1 no longer served: its window and gauges go
    assert monitor.window("m", "1") == []
    psi = registry.get_sample_value(
        "hearteye_drift_psi", {"model": "m", "version": "1", "signal": "amplitude_mv"}
    )
    assert psi is not None
    assert math.isnan(psi)
    assert (
        registry.get_sample_value("hearteye_drift_window_strips", {"model": "m", "version": "2"})
        == 0
    )


def test_a_version_without_profile_is_not_observed(tmp_path: Path) -> None:
    monitor = DriftMonitor(ServingSettings(home=tmp_path), ServingMetrics())
    bare = _loaded("1", None)  # type: ignore[arg-type]
    monitor.observe(bare, [StripInput(SIGNAL, 360.0)], [_prediction()])
    assert monitor.window("m", "1") == []
    assert monitor.report(bare) is None
