"""/live, /ready, /health, /metrics, the OpenAPI docs and the JSON log line."""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable

import numpy as np
import pytest

import hearteye
from tests.serving.conftest import XGB, Api, Registry, body

pytestmark = [pytest.mark.slow, pytest.mark.data]


def test_probes_when_healthy(api: Api, registry: Registry) -> None:
    version = registry.store.versions[XGB][0]
    assert api.client.get("/live").json() == {"status": "alive"}
    assert api.client.get("/ready").json() == {
        "status": "ready",
        "model": XGB,
        "version": version,
    }
    health = api.client.get("/health")
    assert health.status_code == 200
    answer = health.json()
    assert set(answer) == {"status", "timestamp", "version", "uptime", "services"}
    assert answer["status"] == "healthy"
    assert answer["version"] == hearteye.__version__
    assert answer["uptime"] >= 0
    assert set(answer["services"]) == {"registry", "database", "models", "filesystem"}
    assert all(s["status"] == "up" for s in answer["services"].values())
    assert answer["services"]["models"]["detail"] == f"{XGB} v{version}"
    # No token needed for probes, and nothing secret in them.
    assert "secret" not in health.text.lower()


def test_metrics_content(api: Api, registry: Registry, strips: list[np.ndarray]) -> None:
    version = registry.store.versions[XGB][0]
    headers = api.headers()
    answers = [
        api.client.post("/api/v1/predict", json=body(s), headers=headers).json() for s in strips
    ]
    api.client.post("/api/v1/predict", json=body(strips[0], fs=1), headers=headers)
    api.client.get("/no/such/path")

    text = api.client.get("/metrics").text

    assert (
        'hearteye_http_requests_total{method="POST",route="/api/v1/predict",status="200"} 5.0'
        in text
    )
    assert (
        'hearteye_http_requests_total{method="POST",route="/api/v1/predict",status="422"} 1.0'
        in text
    )
    assert 'hearteye_http_requests_total{method="GET",route="unmatched",status="404"} 1.0' in text
    assert (
        'hearteye_http_request_duration_seconds_count{method="POST",route="/api/v1/predict",'
        'status="200"} 5.0'
    ) in text
    assert f'hearteye_predicted_strips_total{{model="{XGB}",version="{version}"}} 5.0' in text
    # One request at a time: five micro-batches of one strip each.
    assert f'hearteye_micro_batch_strips_count{{model="{XGB}"}} 5.0' in text
    assert f'hearteye_micro_batch_strips_bucket{{le="1.0",model="{XGB}"}} 5.0' in text
    for label in ("N", "S", "V", "F", "Q"):
        expected = sum(a["counts"][label] for a in answers)
        line = (
            f'hearteye_predicted_beats_total{{label="{label}",model="{XGB}",version="{version}"}}'
        )
        if expected:
            assert f"{line} {float(expected)}" in text
    run_id = answers[0]["model"]["run_id"]
    assert (
        f'hearteye_model_version_info{{model="{XGB}",run_id="{run_id}",source="registry",'
        f'version="{version}"}} 1.0'
    ) in text
    assert f'hearteye_model_swaps_total{{model="{XGB}",result="swapped"}} 1.0' in text
    assert "hearteye_registry_up 1.0" in text
    assert "hearteye_audit_database_up 1.0" in text


def test_docs_and_openapi(api: Api) -> None:
    assert api.client.get("/api/docs").status_code == 200
    schema = api.client.get("/api/openapi.json").json()
    paths = schema["paths"]
    assert {
        "/api/v1/predict",
        "/api/v1/predict/batch",
        "/api/v1/models",
        "/api/v1/audit",
        "/api/v1/auth/token",
        "/health",
        "/ready",
        "/live",
    } <= set(paths)
    predict = paths["/api/v1/predict"]["post"]
    assert predict["requestBody"]["content"]["application/json"]["schema"]["$ref"].endswith(
        "PredictRequest"
    )
    assert {"401", "403", "413", "422", "503"} <= set(predict["responses"])
    assert "OAuth2PasswordBearer" in schema["components"]["securitySchemes"]


def test_one_json_log_line_per_request(
    api: Api, strips: list[np.ndarray], capsys: pytest.CaptureFixture[str]
) -> None:
    capsys.readouterr()
    response = api.client.post(
        "/api/v1/predict", json=body(strips[0]), headers=api.headers("carla")
    )
    lines: list[dict[str, object]] = []
    deadline = time.monotonic() + 5  # a background thread writes the lines
    out = ""
    while not lines and time.monotonic() < deadline:
        time.sleep(0.02)
        out += capsys.readouterr().out
        lines = [json.loads(line) for line in out.splitlines() if '"type":"access"' in line]
    (entry,) = lines
    assert entry["request_id"] == response.json()["request_id"]
    assert entry["route"] == "/api/v1/predict"
    assert entry["status"] == 200
    assert entry["model"] == XGB
    assert entry["model_version"] == response.json()["model"]["version"]
    assert entry["user"] == "carla"
    assert entry["latency_ms"] > 0


def test_request_id_from_untrusted_clients_is_replaced(
    registry: Registry, start_api: Callable[..., Api], strips: list[np.ndarray]
) -> None:
    untrusted = start_api(client_addr=("192.0.2.10", 5555))
    answer = untrusted.client.get("/live", headers={"X-Request-ID": "client-chosen-id-123"})
    assert answer.headers["x-request-id"] != "client-chosen-id-123"
    assert len(answer.headers["x-request-id"]) == 32
    proxy = start_api(client_addr=("127.0.0.1", 5555))
    adopted = proxy.client.post(
        "/api/v1/predict",
        json=body(strips[0]),
        headers={**proxy.headers(), "X-Request-ID": "nginx-request-id-456"},
    )
    assert adopted.json()["request_id"] == "nginx-request-id-456"
    assert "x-request-id" not in adopted.headers  # the proxy adds its own header
    junk = proxy.client.get("/live", headers={"X-Request-ID": "bad id with spaces!"})
    assert junk.headers["x-request-id"] != "bad id with spaces!"


def test_health_reports_a_down_database_as_degraded(
    api: Api, monkeypatch: pytest.MonkeyPatch
) -> None:
    from sqlalchemy import create_engine

    runtime = api.runtime
    monkeypatch.setattr(runtime, "engine", create_engine("sqlite:////nonexistent/dir/x.db"))
    monkeypatch.setattr(runtime, "database_checked_at", 0.0)
    health = api.client.get("/health").json()
    assert health["status"] == "degraded"
    assert health["services"]["database"]["status"] == "down"
    assert os.path.exists(runtime.settings.home)
