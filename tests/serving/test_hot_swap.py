"""Following the alias: promote and rollback swap within the poll interval; a broken version is
never swapped in; a restart while the registry is unreachable serves the cached version."""

from __future__ import annotations

import shutil
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from tests.serving.conftest import XGB, Api, Registry, body

pytestmark = [pytest.mark.slow, pytest.mark.data]


def _wait_for(condition: Callable[[], Any], timeout_s: float = 10.0) -> float:
    started = time.monotonic()
    while not condition():
        if time.monotonic() - started > timeout_s:
            raise AssertionError(f"not within {timeout_s} s")
        time.sleep(0.02)
    return time.monotonic() - started


def _served(api: Api) -> str:
    return str(api.runtime.store.get(XGB).version)


def test_promote_and_rollback_swap_within_the_interval(
    api: Api, registry: Registry, strips: list[np.ndarray]
) -> None:
    v1, v2 = registry.store.versions[XGB]
    held = api.runtime.store.get(XGB)  # a request in flight holds its version

    registry.set_production(XGB, v2)
    swap_s = _wait_for(lambda: _served(api) == v2)

    assert swap_s < 0.2 + 2.0  # one poll interval plus the load
    answer = api.client.post("/api/v1/predict", json=body(strips[0]), headers=api.headers())
    assert answer.json()["model"]["version"] == v2
    # The old version still answers the request that took it before the swap.
    assert held.version == v1
    assert len(held.model.predict_strip(strips[0], 360.0)) > 0

    registry.set_production(XGB, v1)
    _wait_for(lambda: _served(api) == v1)
    models = api.client.get("/api/v1/models", headers=api.headers()).json()
    (status,) = models["models"]
    assert status["loaded"]["version"] == v1
    assert status["alias_version"] == v1
    assert status["swaps"] == 3
    assert status["last_error"] is None
    metrics = api.client.get("/metrics").text
    assert f'hearteye_model_swaps_total{{model="{XGB}",result="swapped"}} 3.0' in metrics
    assert f'hearteye_model_loaded_version{{model="{XGB}"}} {float(v1)}' in metrics


def test_a_broken_version_is_never_swapped_in(
    api: Api, registry: Registry, strips: list[np.ndarray], tmp_path: Path
) -> None:
    v1 = registry.store.versions[XGB][0]
    # A copy of v1's model whose classifier file is garbage, registered as a new version.
    broken = tmp_path / "broken-model"
    shutil.copytree(registry.model_dir(XGB, v1), broken)
    (broken / "artifacts" / "beat_model" / "classifier" / "booster.ubj").write_bytes(b"\x00" * 64)
    mv = registry.client.create_model_version(XGB, source=broken.as_uri(), run_id=None)
    registry.set_production(XGB, str(mv.version))

    store = api.runtime.store
    _wait_for(lambda: store.slots[XGB].last_error is not None)

    assert _served(api) == v1
    answer = api.client.post("/api/v1/predict", json=body(strips[0]), headers=api.headers())
    assert answer.json()["model"]["version"] == v1
    error = api.client.get("/api/v1/models", headers=api.headers()).json()["models"][0][
        "last_error"
    ]
    assert error["version"] == str(mv.version)
    assert error["stage"] == "load"
    health = api.client.get("/health").json()
    assert health["status"] == "degraded"
    assert health["services"]["models"]["status"] == "degraded"
    assert f"v{mv.version}" in health["services"]["models"]["detail"]
    metrics = api.client.get("/metrics").text
    assert f'hearteye_model_swap_failures_total{{model="{XGB}",stage="load"}} 1.0' in metrics
    assert f'hearteye_model_swap_error{{model="{XGB}"}} 1.0' in metrics
    # Not retried on every poll: once per failed_retry_s (60 s here).
    time.sleep(0.6)
    assert 'stage="load"} 1.0' in api.client.get("/metrics").text
    # Moving the alias back clears the error.
    registry.set_production(XGB, v1)
    _wait_for(lambda: store.slots[XGB].alias_version == v1)
    assert api.client.get("/health").json()["status"] == "healthy"


def test_a_version_without_a_smoke_example_is_refused(
    api: Api, registry: Registry, tmp_path: Path
) -> None:
    v1 = registry.store.versions[XGB][0]
    copy = tmp_path / "no-example"
    shutil.copytree(registry.model_dir(XGB, v1), copy)
    (copy / "input_example.json").unlink()
    mv = registry.client.create_model_version(XGB, source=copy.as_uri(), run_id=None)
    registry.set_production(XGB, str(mv.version))

    store = api.runtime.store
    _wait_for(lambda: store.slots[XGB].last_error is not None)
    assert store.slots[XGB].last_error.stage == "smoke"
    assert _served(api) == v1


def test_restart_while_the_registry_is_down_serves_the_cached_version(
    registry: Registry,
    start_api: Callable[..., Api],
    strips: list[np.ndarray],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    v1 = registry.store.versions[XGB][0]
    first = start_api()
    assert _served(first) == v1
    first.client.__exit__(None, None, None)

    # The registry goes away (a server nobody answers on), the worker restarts.
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://127.0.0.1:9")
    second = start_api(registry_timeout_s=0.5)

    assert second.client.get("/ready").status_code == 200
    answer = second.client.post("/api/v1/predict", json=body(strips[1]), headers=second.headers())
    assert answer.status_code == 200
    assert answer.json()["model"]["version"] == v1
    health = second.client.get("/health").json()
    assert health["status"] == "degraded"
    assert health["services"]["registry"]["status"] == "down"
    assert health["services"]["models"]["detail"] == f"{XGB}: serving cached v{v1}"
    (status,) = second.client.get("/api/v1/models", headers=second.headers()).json()["models"]
    assert status["loaded"]["source"] == "cache"
    assert status["alias_version"] is None
    assert "hearteye_registry_up 0.0" in second.client.get("/metrics").text


def test_not_ready_until_a_production_version_exists(
    registry: Registry, start_api: Callable[..., Api], strips: list[np.ndarray]
) -> None:
    registry.clear_production(XGB)
    api = start_api()

    assert api.client.get("/ready").status_code == 503
    health = api.client.get("/health")
    assert health.status_code == 503
    assert health.json()["status"] == "unhealthy"
    refused = api.client.post("/api/v1/predict", json=body(strips[0]), headers=api.headers())
    assert refused.status_code == 503
    assert "no production version yet" in refused.json()["detail"]

    registry.set_production(XGB, registry.store.versions[XGB][0])
    _wait_for(lambda: api.client.get("/ready").status_code == 200)
    assert api.client.get("/health").json()["status"] == "healthy"
