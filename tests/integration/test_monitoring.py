"""Monitoring on the real stack: the native stack's Prometheus scrapes both serving instances and
mlflow server, loads the alert rules, and every query of the Grafana dashboard returns data after
some traffic and a promotion. (Grafana itself is not run: docs/monitoring.md.)

Needs Debian's prometheus (`scripts/ensure-system.sh prometheus`, run by `make test`); the stack
launcher starts it when the binary is there.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
from argon2 import PasswordHasher

from hearteye.records import load_record
from hearteye.settings import HearteyeSettings, get_settings
from tests.integration.native_stack import NativeStack

pytestmark = [pytest.mark.integration, pytest.mark.slow, pytest.mark.data]

XGB = "ecg-xgboost"
PASSWORD = "monitoring-password-1"
DASHBOARD = (
    Path(__file__).resolve().parents[2] / "infra" / "grafana" / "dashboards" / "hearteye.json"
)
#: Scrapes every 5 s, the drift gauges are refreshed every 15 s: a minute is plenty.
DATA_DEADLINE_S = 120.0


@dataclass
class Monitored:
    prometheus: str
    http: httpx.Client
    token: str
    versions: list[str]

    def query(self, expr: str) -> dict[str, Any]:
        response = httpx.get(f"{self.prometheus}/api/v1/query", params={"query": expr}, timeout=10)
        assert response.status_code == 200, (expr, response.text)
        body = response.json()
        assert body["status"] == "success", (expr, body)
        return dict(body["data"])

    def predict(self, signal: np.ndarray) -> httpx.Response:
        body = {"signal": [float(v) for v in signal], "fs": 360.0, "model": XGB}
        headers = {"Authorization": f"Bearer {self.token}"}
        return self.http.post("/api/v1/predict", json=body, headers=headers)


@pytest.fixture(scope="module")
def monitored(
    native_stack: NativeStack,
    mitdb_dir: Path,
    beat_cache_dir: Path,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Monitored]:
    """ecg-xgboost quick-trained on the stack, v1 in production, v2 registered; a clinician."""
    if not native_stack.serving_enabled:
        pytest.skip("the native stack runs without its serving tier")
    prometheus = native_stack.env.get("HEARTEYE_STACK_PROMETHEUS_URL")
    if not prometheus:
        pytest.fail("the native stack runs no Prometheus: bash scripts/ensure-system.sh prometheus")
    from hearteye.registry import connect, promote
    from hearteye_platform.db import create_db_engine, create_session_factory
    from hearteye_platform.identity import UserStore
    from training.run import train

    home = tmp_path_factory.mktemp("monitoring-it-home")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("MLFLOW_TRACKING_URI", native_stack.mlflow_uri)
        mp.delenv("MLFLOW_REGISTRY_URI", raising=False)
        mp.setenv("MLFLOW_TRACKING_USERNAME", native_stack.admin[0])
        mp.setenv("MLFLOW_TRACKING_PASSWORD", native_stack.admin[1])
        mp.setenv("HEARTEYE_HOME", str(home))
        mp.setenv("HEARTEYE_MITDB_DIR", str(mitdb_dir))
        (home / "cache").mkdir(parents=True, exist_ok=True)
        (beat_cache_dir / "beats").mkdir(parents=True, exist_ok=True)
        (home / "cache" / "beats").symlink_to(beat_cache_dir / "beats", target_is_directory=True)
        get_settings.cache_clear()
        first = str(train("xgboost", HearteyeSettings(), quick=True).version)
        registry = connect(HearteyeSettings())
        mv = registry.client.get_model_version(XGB, first)
        model_id = mv.model_id or mv.source.removeprefix("models:/")
        second = str(
            registry.client.create_model_version(
                XGB, source=mv.source, run_id=mv.run_id, tags=dict(mv.tags), model_id=model_id
            ).version
        )
        promote(registry, XGB, first, force=True, reason="monitoring integration test")

        engine = create_db_engine(native_stack.env["HEARTEYE_DATABASE_URL"], pooled=False)
        users = UserStore(create_session_factory(engine), hasher=PasswordHasher(time_cost=1))
        username = f"mon-clin-{os.urandom(3).hex()}"
        users.add(username, "clinician", PASSWORD)
        engine.dispose()
        with httpx.Client(base_url=native_stack.url, timeout=60) as http:
            token = http.post(
                "/api/v1/auth/token", data={"username": username, "password": PASSWORD}
            ).json()["access_token"]
            yield Monitored(prometheus, http, token, [first, second])
        get_settings.cache_clear()


def _strips(mitdb_dir: Path) -> list[np.ndarray]:
    out = []
    for name in ("106", "119", "208", "209"):
        signal = load_record(mitdb_dir, name).signal
        out += [np.round(signal[s : s + 3600], 3) for s in range(0, 30 * 3600, 3600)]
    return out


def _wait_for_data(monitored: Monitored, expr: str, series: int = 1) -> list[Any]:
    """The result of ``expr`` once it has ``series`` series (or what it has at the deadline)."""
    deadline = time.monotonic() + DATA_DEADLINE_S
    while True:
        result = monitored.query(expr)["result"]
        if len(result) >= series or time.monotonic() > deadline:
            return list(result)
        time.sleep(2)


def test_prometheus_scrapes_serving_and_mlflow_and_loads_the_rules(monitored: Monitored) -> None:
    targets = _wait_for_data(monitored, 'up{job=~"hearteye-serving|mlflow"} == 1', series=3)
    up = {(t["metric"]["job"], t["metric"]["instance"]) for t in targets}
    assert {job for job, _ in up} == {"hearteye-serving", "mlflow"}, up
    assert len([1 for job, _ in up if job == "hearteye-serving"]) == 2  # both instances
    rules = httpx.get(f"{monitored.prometheus}/api/v1/rules", timeout=10).json()["data"]["groups"]
    loaded = {r["name"]: r["health"] for g in rules for r in g["rules"]}
    assert "HearteyeDriftDetected" in loaded
    assert set(loaded.values()) == {"ok"}, loaded


def test_every_dashboard_query_returns_data_after_traffic(
    monitored: Monitored, mitdb_dir: Path
) -> None:
    strips = _strips(mitdb_dir)
    assert _wait_for_data(monitored, f'min(hearteye_model_loaded{{model="{XGB}"}}) == 1'), (
        "the workers did not load the production version"
    )
    for signal in strips[: len(strips) // 2]:
        assert monitored.predict(signal).status_code == 200
    # Some errors for the error panels: a strip too short (422) and no token (401).
    assert monitored.predict(strips[0][:100]).status_code == 422
    assert monitored.http.post("/api/v1/predict", json={}).status_code == 401
    # A promotion, for the version panel and the promotion markers.
    from hearteye.registry import connect, promote

    promote(connect(HearteyeSettings()), XGB, monitored.versions[1], force=True, reason="it")
    version = monitored.versions[1]
    assert _wait_for_data(
        monitored, f'min(hearteye_model_loaded_version{{model="{XGB}"}}) == {version}'
    ), "the workers did not swap to the promoted version"
    for signal in strips[len(strips) // 2 :]:
        assert monitored.predict(signal).status_code == 200

    dashboard = json.loads(DASHBOARD.read_text())
    queries = [
        (panel["title"], target["expr"])
        for panel in dashboard["panels"]
        for target in panel.get("targets", [])
    ]
    # The drift gauges appear after a refresh of the workers' monitors (every 15 s).
    _wait_for_data(monitored, "hearteye_drift_psi")
    empty = []
    for title, expr in queries:
        result = _wait_for_data(monitored, expr)
        print(f"{len(result):3d} series  {title}: {expr}")
        if not result:
            empty.append(title)
    assert not empty, f"panels without data: {empty}"

    annotation = dashboard["annotations"]["list"][0]["expr"]
    end = time.time()
    response = httpx.get(
        f"{monitored.prometheus}/api/v1/query_range",
        params={"query": annotation, "start": end - 600, "end": end, "step": "5"},
        timeout=10,
    ).json()
    assert response["status"] == "success", response
    assert any(s["metric"].get("model") == XGB for s in response["data"]["result"]), response
