"""The prediction routes' fast path (serving/fastpath.py) answers exactly what FastAPI's path does.

Two apps on the same store and home, one with the fast path and one without, get the same
requests: good ones (which the fast path must answer itself) and refused ones of every kind
(which it must hand to FastAPI, or answer with the app's own exception handlers). Every answer
must be the same, byte for byte once the request id is set aside.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest

from serving.fastpath import PredictFastPath
from tests.serving.conftest import Api, Registry, body

pytestmark = [pytest.mark.slow, pytest.mark.data]


def _fast_path(api: Api) -> PredictFastPath | None:
    """The app's fast-path middleware, if its stack has one."""
    app = api.app.middleware_stack
    while app is not None:
        if isinstance(app, PredictFastPath):
            return app
        app = getattr(app, "app", None)
    return None


def _answer(response: Any) -> tuple[int, Any, dict[str, str]]:
    """Status, JSON body without its request id, and the headers that matter to a client."""
    payload = response.json()
    if isinstance(payload, dict):
        payload.pop("request_id", None)
    headers = {
        k: response.headers[k]
        for k in ("content-type", "www-authenticate", "retry-after")
        if k in response.headers
    }
    return response.status_code, payload, headers


@pytest.fixture
def both(registry: Registry, start_api: Callable[..., Api]) -> tuple[Api, Api, PredictFastPath]:
    """An app with the fast path, one without (same store and home), and the first's middleware."""
    fast, plain = start_api(), start_api(fast_path=False)
    fast.client.get("/live")  # builds the middleware stacks
    plain.client.get("/live")
    middleware = _fast_path(fast)
    assert isinstance(middleware, PredictFastPath)
    assert _fast_path(plain) is None
    return fast, plain, middleware


def _post(api: Api, path: str, content: bytes, headers: dict[str, str]) -> Any:
    return api.client.post(path, content=content, headers=headers)


def test_good_requests_are_answered_by_the_fast_path_as_by_fastapi(
    both: tuple[Api, Api, PredictFastPath], strips: list[np.ndarray]
) -> None:
    fast, plain, middleware = both
    auth = {"Authorization": f"Bearer {fast.token('carla')}", "Content-Type": "application/json"}
    requests = [
        ("/api/v1/predict", body(strips[0])),
        ("/api/v1/predict", body(strips[1], model="ecg-xgboost")),
        ("/api/v1/predict", body(strips[2], r_peaks=[400, 700, 1000])),
        ("/api/v1/predict", {**body(strips[3]), "fs": 360}),  # an integer rate
        # float32 samples spelled as doubles (17 digits): validated whole, not split
        ("/api/v1/predict", body(strips[4].astype(np.float32).astype(np.float64))),
        ("/api/v1/predict/batch", {"strips": [body(s) for s in strips[:3]]}),
    ]
    answered, split = middleware.answered, middleware.split
    for path, payload in requests:
        content = json.dumps(payload).encode()
        got, expected = _post(fast, path, content, auth), _post(plain, path, content, auth)
        assert got.status_code == 200, got.text
        assert _answer(got) == _answer(expected)
        assert got.headers["x-request-id"] == got.json()["request_id"]
    assert middleware.answered - answered == len(requests)
    assert middleware.split - split == 4  # the signals split_signal parsed straight to float64
    # The same audit records as the ordinary path (both apps write to the same database).
    plain.flush_audit()
    records = fast.audit_records()
    keys = [r.model_dump(exclude={"request_id", "occurred_at", "latency_ms"}) for r in records]
    assert len(keys) == 2 * len(requests)
    assert all(keys.count(k) == 2 for k in keys)
    assert {(k["route"], k["status_code"], k["username"]) for k in keys} == {
        ("/api/v1/predict", 200, "carla"),
        ("/api/v1/predict/batch", 200, "carla"),
    }
    metrics = fast.client.get("/metrics").text
    assert 'route="/api/v1/predict",status="200"' in metrics


def test_refusals_are_the_same_answers_as_fastapis(
    both: tuple[Api, Api, PredictFastPath], strips: list[np.ndarray]
) -> None:
    fast, plain, middleware = both
    good = json.dumps(body(strips[0])).encode()
    token = fast.token("carla")
    json_auth = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
    nan = body(strips[0])
    nan["signal"][5] = float("nan")
    cases: list[tuple[str, bytes, dict[str, str], bool]] = [
        # (path, body, headers, handed to FastAPI?)
        ("/api/v1/predict", b'{"signal": [1, 2', json_auth, True),
        ("/api/v1/predict", b'{"signal": "x", "fs": 360}', json_auth, True),
        ("/api/v1/predict", json.dumps({**body(strips[0]), "extra": 1}).encode(), json_auth, True),
        ("/api/v1/predict/batch", b'{"strips": []}', json_auth, True),
        ("/api/v1/predict", good, {"Content-Type": "application/json"}, True),
        ("/api/v1/predict", good, {**json_auth, "Authorization": "Bearer nonsense"}, True),
        ("/api/v1/predict", good, {"Authorization": f"Bearer {token}"}, True),
        ("/api/v1/predict", good, {**json_auth, "Content-Type": "text/plain"}, True),
        # Well-formed and authorised, refused by the endpoint: the app's handlers answer.
        ("/api/v1/predict", json.dumps(nan).encode(), json_auth, False),
        ("/api/v1/predict", json.dumps(body(strips[0], fs=50)).encode(), json_auth, False),
        ("/api/v1/predict", json.dumps(body(strips[0][:300])).encode(), json_auth, False),
        ("/api/v1/predict", json.dumps(body(strips[0], model="nope")).encode(), json_auth, False),
        (
            "/api/v1/predict",
            json.dumps(body(strips[0], r_peaks=[10, 5])).encode(),
            json_auth,
            False,
        ),
        (
            "/api/v1/predict/batch",
            json.dumps({"strips": [body(s) for s in strips[:40]] * 9}).encode(),
            json_auth,
            False,
        ),
    ]
    for path, content, headers, handed_on in cases:
        before = (middleware.answered, middleware.handed_on)
        got, expected = _post(fast, path, content, headers), _post(plain, path, content, headers)
        assert 400 <= got.status_code < 500, (content[:60], got.text)
        assert _answer(got) == _answer(expected), content[:60]
        after = (middleware.answered, middleware.handed_on)
        assert after == ((before[0], before[1] + 1) if handed_on else (before[0] + 1, before[1]))
