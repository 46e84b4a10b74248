"""One audit record per prediction request, answered or refused, and the admin's audit query."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import numpy as np
import pytest

from hearteye_platform.audit import signal_sha256
from tests.serving.conftest import XGB, Api, Registry, body

pytestmark = [pytest.mark.slow, pytest.mark.data]


def test_answered_request_record(
    registry: Registry, start_api: Callable[..., Api], strips: list[np.ndarray]
) -> None:
    api = start_api(client_addr=("127.0.0.1", 40000))
    signal = strips[3]
    headers = {
        **api.headers("carla"),
        "X-Forwarded-For": "203.0.113.9, 198.51.100.7",  # client-sent hop, then nginx's
        "X-Request-ID": "0123456789abcdef0123456789abcdef",
    }
    before = datetime.now(UTC)

    response = api.client.post("/api/v1/predict", json=body(signal), headers=headers)

    assert response.status_code == 200
    answer = response.json()
    assert answer["request_id"] == "0123456789abcdef0123456789abcdef"  # from the trusted proxy
    (record,) = api.audit_records()
    version = registry.store.versions[XGB][0]
    assert record.request_id == answer["request_id"]
    assert before - timedelta(seconds=1) <= record.occurred_at <= datetime.now(UTC)
    assert record.username == "carla"
    assert record.client_addr == "198.51.100.7"  # rightmost address the proxy appended
    assert record.route == "/api/v1/predict"
    assert (record.model_name, record.model_version) == (XGB, version)
    assert record.run_id == answer["model"]["run_id"]
    assert record.signal_sha256 == signal_sha256([float(v) for v in signal])
    assert record.n_beats == len(answer["beats"])
    assert record.label_counts == {k: v for k, v in answer["counts"].items() if v}
    assert record.status_code == 200
    assert record.latency_ms > 0


def test_refused_requests_are_recorded_too(api: Api, strips: list[np.ndarray]) -> None:
    signal = strips[0]
    token = api.token("carla")
    bad_rate = api.client.post(
        "/api/v1/predict",
        json=body(signal, fs=20),
        headers={"Authorization": f"Bearer {token}", "X-Forwarded-For": "198.51.100.1"},
    )
    no_token = api.client.post("/api/v1/predict", json=body(signal))
    unknown = api.client.post(
        "/api/v1/predict/batch",
        json={"strips": [body(signal)], "model": "nope"},
        headers=api.headers(),
    )
    statuses = [bad_rate.status_code, no_token.status_code, unknown.status_code]
    assert statuses == [422, 401, 422]

    records = {r.request_id: r for r in api.audit_records()}

    assert len(records) == 3
    rate = records[bad_rate.headers["x-request-id"]]
    assert (rate.status_code, rate.username, rate.model_version) == (422, "carla", None)
    assert rate.signal_sha256 == signal_sha256([float(v) for v in signal])
    assert rate.client_addr == "testclient"  # not a trusted proxy: its X-Forwarded-For ignored
    assert rate.n_beats is None
    anonymous = records[no_token.headers["x-request-id"]]
    assert (anonymous.status_code, anonymous.username) == (401, None)
    batch = records[unknown.headers["x-request-id"]]
    assert (batch.route, batch.status_code, batch.model_name) == (
        "/api/v1/predict/batch",
        422,
        None,
    )
    # Other routes leave no audit record.
    api.client.get("/api/v1/models", headers=api.headers())
    assert len(api.audit_records()) == 3


def test_body_too_large_is_recorded_with_the_token_user(
    registry: Registry, start_api: Callable[..., Api]
) -> None:
    api = start_api(max_body_bytes=2048)
    content = b'{"fs": 360, "signal": [' + b",".join([b"0.1"] * 2000) + b"]}"
    response = api.client.post(
        "/api/v1/predict",
        content=content,
        headers={**api.headers("carla"), "content-type": "application/json"},
    )
    assert response.status_code == 413
    (record,) = api.audit_records()
    assert (record.status_code, record.username, record.signal_sha256) == (413, "carla", None)


def test_batch_record_digest_covers_every_strip(api: Api, strips: list[np.ndarray]) -> None:
    pair = [strips[0], strips[1]]
    response = api.client.post(
        "/api/v1/predict/batch", json={"strips": [body(s) for s in pair]}, headers=api.headers()
    )
    assert response.status_code == 200
    (record,) = api.audit_records()
    assert record.signal_sha256 == signal_sha256(np.concatenate(pair))
    assert record.n_beats == sum(len(r["beats"]) for r in response.json()["results"])


def test_admin_reads_the_trail_with_filters(
    registry: Registry, api: Api, strips: list[np.ndarray]
) -> None:
    for user in ("carla", "adam"):
        api.client.post("/api/v1/predict", json=body(strips[0]), headers=api.headers(user))
    api.client.post("/api/v1/predict", json=body(strips[0], fs=5), headers=api.headers("carla"))
    api.flush_audit()
    admin = api.headers("adam", role="admin")

    everything = api.client.get("/api/v1/audit", headers=admin).json()
    assert everything["count"] == 3
    assert [r["status_code"] for r in everything["records"]] == [422, 200, 200]  # newest first

    version = registry.store.versions[XGB][0]
    carla = api.client.get(
        "/api/v1/audit",
        params={"username": "carla", "model_version": version, "model_name": XGB},
        headers=admin,
    ).json()
    assert [(r["username"], r["status_code"]) for r in carla["records"]] == [("carla", 200)]

    future = (datetime.now(UTC) + timedelta(hours=1)).isoformat()
    assert (
        api.client.get("/api/v1/audit", params={"since": future}, headers=admin).json()["count"]
        == 0
    )
    limited = api.client.get("/api/v1/audit", params={"limit": 1}, headers=admin).json()
    assert limited["count"] == 1
    refused = (
        {"limit": 0},
        {"since": "2025-01-01T00:00:00"},  # no timezone
        {"since": "yesterday"},
        {"until": "0.5"},  # a Unix time, outside the documented format (found by test_fuzz.py)
        {"since": "1764921600"},
    )
    for params in refused:
        answer = api.client.get("/api/v1/audit", params=params, headers=admin)
        assert answer.status_code == 422, params
