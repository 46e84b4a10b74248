"""What a client can get wrong: always a 4xx naming the field and the limit, never a 5xx."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest

from tests.serving.conftest import Api, body

pytestmark = [pytest.mark.slow, pytest.mark.data]


def _post(api: Api, payload: Any, path: str = "/api/v1/predict") -> Any:
    return api.client.post(path, json=payload, headers=api.headers())


def _raw(api: Api, content: bytes, path: str = "/api/v1/predict") -> Any:
    headers = {**api.headers(), "content-type": "application/json"}
    return api.client.post(path, content=content, headers=headers)


def _only_error(response: Any) -> dict[str, Any]:
    assert response.status_code == 422, response.text
    detail = response.json()["detail"]
    assert isinstance(detail, list)
    assert detail
    assert all("input" not in d for d in detail)  # the signal is never echoed back
    return dict(detail[0])


@pytest.fixture
def signal(strips: list[np.ndarray]) -> np.ndarray:
    return strips[0]


@pytest.mark.parametrize(
    ("fs", "shown"),
    [(50, "50 Hz"), (99.9, "99.9 Hz"), (1000.5, "1000.5 Hz"), (-360, "-360 Hz"), (0, "0 Hz")],
)
def test_sampling_rate_outside_the_range(
    api: Api, signal: np.ndarray, fs: float, shown: str
) -> None:
    error = _only_error(_post(api, body(signal, fs=fs)))
    assert error["loc"] == ["body", "fs"]
    assert shown in error["msg"]
    assert "100-1000 Hz" in error["msg"]


def test_strip_too_short_and_too_long(api: Api, signal: np.ndarray) -> None:
    short = _only_error(_post(api, body(signal[: int(1.9 * 360)])))
    assert short["loc"] == ["body", "signal"]
    assert "1.90 s" in short["msg"]
    assert "minimum 2 s" in short["msg"]

    long_signal = np.tile(signal, 61)[: 360 * 601]  # 601 s
    long = _only_error(_post(api, body(long_signal)))
    assert long["loc"] == ["body", "signal"]
    assert "longer than the maximum 600 s" in long["msg"]


@pytest.mark.parametrize("token", [b"NaN", b"Infinity", b"-Infinity"])
def test_non_finite_samples(api: Api, signal: np.ndarray, token: bytes) -> None:
    values = [json.dumps(float(v)).encode() for v in signal]
    values[123] = token
    content = b'{"fs": 360, "signal": [' + b",".join(values) + b"]}"
    error = _only_error(_raw(api, content))
    assert error["loc"] == ["body", "signal", 123]
    assert "sample 123" in error["msg"]
    assert "finite" in error["msg"]


def test_samples_beyond_a_volt_are_refused(api: Api, signal: np.ndarray) -> None:
    """Values near the float range overflowed the features (a 500, found by test_fuzz.py)."""
    error = _only_error(_post(api, body(np.r_[signal[:-1], 1e300])))
    assert error["loc"] == ["body", "signal"]
    assert "not in millivolts" in error["msg"]


@pytest.mark.parametrize(
    ("payload", "loc"),
    [
        ({"fs": 360}, ["body", "signal"]),
        ({"signal": [0.1] * 1000}, ["body", "fs"]),
        ({"signal": "0.1,0.2", "fs": 360}, ["body", "signal"]),
        ({"signal": [0.1, "x"] * 500, "fs": 360}, ["body", "signal", 1]),
        ({"signal": [[0.1, 0.2]] * 500, "fs": 360}, ["body", "signal", 0]),
        ({"signal": [0.1] * 1000, "fs": "fast"}, ["body", "fs"]),
        ({"signal": [0.1] * 1000, "fs": 360, "lead": "II"}, ["body", "lead"]),
        ([1, 2, 3], ["body"]),
        ("a string", ["body"]),
    ],
)
def test_wrong_json_shapes(api: Api, payload: Any, loc: list[Any]) -> None:
    error = _only_error(_post(api, payload))
    assert error["loc"] == loc


def test_malformed_json_and_empty_body(api: Api) -> None:
    error = _only_error(_raw(api, b'{"signal": [0.1, 0.2'))
    assert error["type"] == "json_invalid"
    assert "EOF" in error["msg"]
    empty = _raw(api, b"")
    assert empty.status_code == 422
    assert empty.json()["detail"][0]["loc"] == ["body"]


def test_unknown_model(api: Api, signal: np.ndarray) -> None:
    error = _only_error(_post(api, body(signal, model="ecg-transformer")))
    assert error["loc"] == ["body", "model"]
    assert "ecg-transformer" in error["msg"]
    assert "ecg-xgboost" in error["msg"]  # says what is served


@pytest.mark.parametrize(
    ("r_peaks", "message"),
    [
        ([100, 50000], "within the signal (0 to 3599)"),
        ([-1, 100], "within the signal"),
        ([100, 2**70], "within the signal"),  # beyond int64: found by tests/serving/test_fuzz.py
        ([-(2**70), 100], "within the signal"),
        ([300, 200, 900], "strictly increasing"),
        ([300, 300], "strictly increasing"),
        ([100.5, 900], "valid integer"),
        ("100,200", "valid list"),
    ],
)
def test_bad_r_peaks(api: Api, signal: np.ndarray, r_peaks: Any, message: str) -> None:
    error = _only_error(_post(api, body(signal, r_peaks=r_peaks)))
    assert error["loc"][:2] == ["body", "r_peaks"]
    assert message in error["msg"]


def test_batch_errors_name_the_strip(api: Api, signal: np.ndarray) -> None:
    good = body(signal)
    error = _only_error(
        _post(api, {"strips": [good, body(signal, fs=20)]}, path="/api/v1/predict/batch")
    )
    assert error["loc"] == ["body", "strips", 1, "fs"]

    too_many = {"strips": [good] * 33}
    error = _only_error(_post(api, too_many, path="/api/v1/predict/batch"))
    assert error["loc"] == ["body", "strips"]
    assert "at most 32" in error["msg"]

    error = _only_error(_post(api, {"strips": []}, path="/api/v1/predict/batch"))
    assert error["loc"] == ["body", "strips"]


def test_body_over_the_limit_is_refused_before_parsing(
    registry: object, start_api: Any, signal: np.ndarray
) -> None:
    api = start_api(max_body_bytes=64 * 1024)
    big = b'{"fs": 360, "signal": [' + b",".join([b"0.12345"] * 20000) + b"]}"
    assert len(big) > 64 * 1024

    by_length = _raw(api, big)
    assert by_length.status_code == 413
    assert "exceeds the limit of 65536 bytes" in by_length.json()["detail"]

    def chunks() -> Iterator[bytes]:
        for start in range(0, len(big), 4096):
            yield big[start : start + 4096]

    headers = {**api.headers(), "content-type": "application/json"}
    chunked = api.client.post("/api/v1/predict", content=chunks(), headers=headers)
    assert chunked.status_code == 413
    assert chunked.headers["x-request-id"]

    # Below the limit, a chunked body is read and answered normally.
    small = json.dumps(body(signal)).encode()
    assert len(small) < 64 * 1024
    ok = api.client.post(
        "/api/v1/predict", content=iter([small[:1000], small[1000:]]), headers=headers
    )
    assert ok.status_code == 200, ok.text


def test_no_server_error_for_anything_sent(api: Api, signal: np.ndarray) -> None:
    payloads: list[Any] = [
        None,
        {},
        {"signal": None, "fs": None},
        {"signal": [], "fs": 360},
        {"signal": [1e308] * 1000, "fs": 360},
        {"signal": [0.0] * 3600, "fs": 360},  # flat line: no beats, not an error
        body(signal, r_peaks=[]),
        body(signal, model=""),
        body(signal, model=None),
        {"strips": "x"},
    ]
    for payload in payloads:
        for path in ("/api/v1/predict", "/api/v1/predict/batch"):
            response = _post(api, payload, path=path)
            assert response.status_code < 500, (payload, path, response.text)
    huge_fs = b'{"signal": [' + b",".join([b"0.1"] * 1000) + b'], "fs": 1e400}'
    for path in ("/api/v1/predict", "/api/v1/predict/batch"):
        assert _raw(api, huge_fs, path=path).status_code == 422
    flat = _post(api, {"signal": [0.0] * 3600, "fs": 360})
    assert flat.status_code == 200
    assert flat.json()["beats"] == []
