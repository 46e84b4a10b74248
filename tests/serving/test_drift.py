"""Drift monitoring end to end: real MIT-BIH strips through the served quick XGBoost model.

The reference profile was logged at training from 40 strips of each quick DS1 record (106, 118,
119, 201, 208, 209). Each scenario starts a fresh app (a fresh window), feeds 240 other strips of
those records, as they are or changed, and reads ``GET /api/v1/models/{name}/drift`` and
``/metrics``. Every scenario prints its PSI table (``pytest -s``); docs/monitoring.md quotes it.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from hearteye.monitoring.drift import SIGNALS
from hearteye.records import load_record
from serving.schemas import DriftResponse
from tests.serving.conftest import XGB, Api, Registry

pytestmark = [pytest.mark.slow, pytest.mark.data]

#: The quick training records (training.run.QUICK_RECORDS["DS1"]): the undrifted stream.
TRAINING_RECORDS = ("106", "118", "119", "201", "208", "209")
STRIPS_PER_RECORD = 40
STRIP_SAMPLES = 3600  # 10 s at 360 Hz
BATCH = 32


def _strips(mitdb_dir: Path, records: tuple[str, ...], per_record: int, lead: str = "MLII"):
    """``per_record`` 10-s strips of each record, evenly spaced, half a step after the ones the
    reference profile used (so none is a strip of the profile)."""
    out = []
    for name in records:
        signal = load_record(mitdb_dir, name, lead).signal
        step = (len(signal) - STRIP_SAMPLES) / (per_record - 1)
        for i in range(per_record):
            start = int(min((i + 0.5) * step, len(signal) - STRIP_SAMPLES))
            out.append(np.round(signal[start : start + STRIP_SAMPLES], 3))
    return out


@pytest.fixture(scope="module")
def scenarios(mitdb_dir: Path) -> dict[str, list[np.ndarray]]:
    undrifted = _strips(mitdb_dir, TRAINING_RECORDS, STRIPS_PER_RECORD)
    rng = np.random.default_rng(7)
    return {
        "undrifted": undrifted,
        "gain x0.5": [0.5 * s for s in undrifted],
        "noise 0.05 mV": [s + rng.normal(0.0, 0.05, s.size) for s in undrifted],
        "lead V1": _strips(mitdb_dir, TRAINING_RECORDS, STRIPS_PER_RECORD, lead="V1"),
        # The same patients in another proportion: only two of the six records.
        "records 118+209": _strips(mitdb_dir, ("118", "209"), 3 * STRIPS_PER_RECORD),
    }


#: The signals each change must fire (others may fire too; the printed table shows them all).
EXPECTED = {
    "undrifted": set(),
    "gain x0.5": {"amplitude_mv", "baseline_wander_mv", "noise_mv"},
    "noise 0.05 mV": {"noise_mv"},
    "lead V1": {"amplitude_mv", "confidence", "low_confidence_per_min"},
    "records 118+209": {"class_mix", "heart_rate_bpm"},
}


def _feed(api: Api, strips: list[np.ndarray]) -> None:
    headers = api.headers()
    for start in range(0, len(strips), BATCH):
        chunk = strips[start : start + BATCH]
        body = {"model": XGB, "strips": [{"signal": s.tolist(), "fs": 360.0} for s in chunk]}
        response = api.client.post("/api/v1/predict/batch", json=body, headers=headers)
        assert response.status_code == 200, response.text


def _fired_gauges(api: Api, version: str) -> set[str]:
    """Signals whose ``hearteye_drift_signal_fired`` gauge is 1, once the updater has run."""
    deadline = time.monotonic() + 10.0
    pattern = re.compile(
        rf'hearteye_drift_signal_fired\{{model="{XGB}",signal="(\w+)",version="{version}"\}} '
        r"([\d.]+)"
    )
    while True:
        text = api.client.get("/metrics").text
        values = dict(pattern.findall(text))
        if len(values) == len(SIGNALS) or time.monotonic() > deadline:
            return {signal for signal, value in values.items() if float(value) == 1.0}
        time.sleep(0.05)


@pytest.mark.parametrize("scenario", list(EXPECTED))
def test_each_change_moves_its_signal_and_the_undrifted_stream_fires_none(
    scenario: str,
    scenarios: dict[str, list[np.ndarray]],
    registry: Registry,
    start_api: Callable[..., Api],
) -> None:
    api = start_api(drift_update_interval_s=0.05)
    version = registry.store.versions[XGB][0]
    _feed(api, scenarios[scenario])

    response = api.client.get(f"/api/v1/models/{XGB}/drift", headers=api.headers("adam", "admin"))
    assert response.status_code == 200, response.text
    drift = DriftResponse.model_validate(response.json())
    assert drift.monitored
    assert drift.version == version
    assert drift.strips == len(scenarios[scenario])
    assert drift.enough_data
    print(f"\n{scenario}: fired {drift.fired or 'nothing'}")
    for s in drift.signals:
        print(
            f"  {s.signal:24s} PSI {s.psi:6.2f}  median {s.window_median:.4g} "
            f"(reference {s.reference_median:.4g})"
            if s.window_median is not None and s.reference_median is not None
            else f"  {s.signal:24s} PSI {s.psi:6.2f}"
        )
    fired = set(drift.fired)
    if EXPECTED[scenario]:
        assert EXPECTED[scenario] <= fired
    else:
        assert fired == set(), {s.signal: s.psi for s in drift.signals}
        assert all(s.psi is not None and s.psi < drift.psi_threshold for s in drift.signals)
    assert _fired_gauges(api, version) == fired


def test_drift_route_is_for_admins_and_names_unknown_models(
    registry: Registry, start_api: Callable[..., Api]
) -> None:
    api = start_api()
    url = f"/api/v1/models/{XGB}/drift"
    assert api.client.get(url).status_code == 401
    assert api.client.get(url, headers=api.headers()).status_code == 403
    admin = api.headers("adam", "admin")
    missing = api.client.get("/api/v1/models/no-such-model/drift", headers=admin)
    assert missing.status_code == 404
    assert "no-such-model" in missing.json()["detail"]
    empty = DriftResponse.model_validate(api.client.get(url, headers=admin).json())
    assert empty.monitored
    assert empty.strips == 0
    assert not empty.enough_data
    assert empty.fired == []
    assert empty.reference is not None
    assert empty.reference["records"] == list(TRAINING_RECORDS)


def test_low_confidence_beats_are_counted_per_version(
    registry: Registry, start_api: Callable[..., Api], scenarios: dict[str, list[np.ndarray]]
) -> None:
    api = start_api()
    _feed(api, scenarios["lead V1"][:BATCH])
    version = registry.store.versions[XGB][0]
    text = api.client.get("/metrics").text
    match = re.search(
        rf'hearteye_low_confidence_beats_total\{{model="{XGB}",version="{version}"\}} ([\d.]+)',
        text,
    )
    assert match is not None
    assert float(match.group(1)) > 0


def test_monitoring_off_computes_nothing(
    registry: Registry, start_api: Callable[..., Api], scenarios: dict[str, list[np.ndarray]]
) -> None:
    api = start_api(drift_monitoring=False)
    _feed(api, scenarios["undrifted"][:4])
    response = api.client.get(f"/api/v1/models/{XGB}/drift", headers=api.headers("adam", "admin"))
    assert response.status_code == 503
    assert "HEARTEYE_DRIFT_MONITORING" in response.json()["detail"]
    assert api.runtime.store.get(XGB).profile is None
    assert api.runtime.drift is None
