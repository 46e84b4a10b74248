"""The Open Inference Protocol (KServe V2 REST) in-process: every route, the same answers as
``/api/v1/predict``, the V2 error shape with a 4xx for bad input, auth and audit as /api/v1."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import pytest

from hearteye.labels import AAMI_CLASSES
from hearteye_platform.audit import signal_sha256
from serving.oip import InferResponse, ModelMetadata
from tests.serving.conftest import XGB, Api, Registry, body

pytestmark = [pytest.mark.slow, pytest.mark.data]


def infer_body(signal: np.ndarray, fs: float = 360.0, **extra: Any) -> dict[str, Any]:
    inputs = [
        {"name": "signal", "shape": [len(signal)], "datatype": "FP32", "data": signal.tolist()},
        {"name": "fs", "shape": [1], "datatype": "FP32", "data": [fs]},
    ]
    return {"inputs": inputs, **extra}


def test_server_routes_need_no_token(api: Api) -> None:
    assert api.client.get("/v2").json() == {
        "name": "hearteye",
        "version": api.app.version,
        "extensions": [],
    }
    assert api.client.get("/v2/health/live").json() == {"live": True}
    ready = api.client.get("/v2/health/ready")
    assert (ready.status_code, ready.json()) == (200, {"ready": True})


def test_model_metadata_and_readiness(api: Api, registry: Registry) -> None:
    version = registry.store.versions[XGB][0]
    for path in (f"/v2/models/{XGB}", f"/v2/models/{XGB}/versions/{version}"):
        response = api.client.get(path, headers=api.headers())
        assert response.status_code == 200, response.text
        meta = ModelMetadata.model_validate(response.json())
        assert (meta.name, meta.versions, meta.platform) == (XGB, [version], "hearteye_xgboost")
        assert [(t.name, t.datatype, t.shape) for t in meta.inputs] == [
            ("signal", "FP32", [-1]),
            ("fs", "FP32", [1]),
            ("r_peaks", "INT64", [-1]),
        ]
        assert [(t.name, t.datatype, t.shape) for t in meta.outputs] == [
            ("sample", "INT64", [-1]),
            ("label", "BYTES", [-1]),
            ("probabilities", "FP32", [-1, 5]),
        ]
        assert meta.outputs[2].parameters == {"classes": ",".join(AAMI_CLASSES)}
        ready = api.client.get(f"{path}/ready", headers=api.headers())
        assert (ready.status_code, ready.json()) == (200, {"name": XGB, "ready": True})


def test_infer_gives_the_answer_of_api_v1(
    api: Api, registry: Registry, strips: list[np.ndarray]
) -> None:
    version = registry.store.versions[XGB][0]
    for signal in strips[:3]:
        v1 = api.client.post("/api/v1/predict", json=body(signal), headers=api.headers()).json()
        response = api.client.post(
            f"/v2/models/{XGB}/infer", json=infer_body(signal, id="strip-1"), headers=api.headers()
        )
        assert response.status_code == 200, response.text
        answer = response.json()
        assert InferResponse.model_validate(answer).model_dump(mode="json", exclude_none=True) == (
            answer
        )
        assert (answer["model_name"], answer["model_version"], answer["id"]) == (
            XGB,
            version,
            "strip-1",
        )
        out = {o["name"]: o for o in answer["outputs"]}
        beats = len(v1["beats"])
        assert out["sample"] == {
            "name": "sample",
            "shape": [beats],
            "datatype": "INT64",
            "data": [b["sample"] for b in v1["beats"]],
        }
        assert out["label"]["data"] == [b["label"] for b in v1["beats"]]
        assert out["label"]["datatype"] == "BYTES"
        assert out["probabilities"]["shape"] == [beats, 5]
        expected = [b["probabilities"][c] for b in v1["beats"] for c in AAMI_CLASSES]
        assert out["probabilities"]["data"] == expected


def test_infer_with_a_version_r_peaks_and_chosen_outputs(
    api: Api, registry: Registry, strips: list[np.ndarray]
) -> None:
    version = registry.store.versions[XGB][0]
    payload = infer_body(strips[0], outputs=[{"name": "label"}])
    payload["inputs"].append(
        {"name": "r_peaks", "shape": [3], "datatype": "INT64", "data": [400, 700, 1000]}
    )
    response = api.client.post(
        f"/v2/models/{XGB}/versions/{version}/infer", json=payload, headers=api.headers()
    )
    assert response.status_code == 200, response.text
    answer = response.json()
    assert answer["id"] == response.headers["x-request-id"]  # no id sent: the request's own
    assert [o["name"] for o in answer["outputs"]] == ["label"]
    assert answer["outputs"][0]["shape"] == [3]


def test_a_version_not_served_is_404_naming_the_served_one(
    api: Api, registry: Registry, strips: list[np.ndarray]
) -> None:
    served = registry.store.versions[XGB][0]
    other = registry.store.versions[XGB][1]
    for path in (
        f"/v2/models/{XGB}/versions/{other}",
        f"/v2/models/{XGB}/versions/{other}/ready",
    ):
        response = api.client.get(path, headers=api.headers())
        assert response.status_code == 404
        assert response.json() == {
            "error": f"model {XGB!r} version {other!r} is not served: version {served} is "
            "(the 'production' alias)"
        }
    response = api.client.post(
        f"/v2/models/{XGB}/versions/{other}/infer",
        json=infer_body(strips[0]),
        headers=api.headers(),
    )
    assert response.status_code == 404
    assert f"version {served} is" in response.json()["error"]
    unknown = api.client.get("/v2/models/ecg-nope", headers=api.headers())
    assert unknown.status_code == 404
    assert "not served here" in unknown.json()["error"]


def _tensor(name: str, shape: list[int], datatype: str, data: list[Any]) -> dict[str, Any]:
    return {"name": name, "shape": shape, "datatype": datatype, "data": data}


SIGNAL = [0.0] * 1800


@pytest.mark.parametrize(
    ("inputs", "message"),
    [
        ([_tensor("fs", [1], "FP32", [360])], "input 'signal' is missing"),
        ([_tensor("signal", [1800], "FP32", SIGNAL)], "input 'fs' is missing"),
        (
            [_tensor("signal", [1800], "INT8", SIGNAL), _tensor("fs", [1], "FP32", [360])],
            "datatype INT8 is not accepted (use FP32 or FP64)",
        ),
        (
            [_tensor("signal", [1799], "FP32", SIGNAL), _tensor("fs", [1], "FP32", [360])],
            "shape [1799] holds 1799 values, data has 1800",
        ),
        (
            [_tensor("signal", [2, 900], "FP32", SIGNAL), _tensor("fs", [1], "FP32", [360])],
            "must have 1 non-negative dimension(s)",
        ),
        (
            [_tensor("signal", [2], "FP32", ["a", "b"]), _tensor("fs", [1], "FP32", [360])],
            "data must be numbers",
        ),
        (
            [_tensor("signal", [1800], "FP32", SIGNAL), _tensor("fs", [2], "FP32", [360, 360])],
            "shape must be [1]",
        ),
        (
            [
                _tensor("signal", [1800], "FP32", SIGNAL),
                _tensor("fs", [1], "FP32", [360]),
                _tensor("r_peaks", [2], "INT64", [1.5, 2.5]),
            ],
            "input 'r_peaks': data must be integers",
        ),
        (
            [_tensor("signal", [1800], "FP32", SIGNAL), _tensor("fs", [1], "FP32", [20])],
            "inputs.fs: sampling rate 20 Hz is outside the accepted range",
        ),
        (
            [_tensor("signal", [100], "FP32", SIGNAL[:100]), _tensor("fs", [1], "FP32", [360])],
            "inputs.signal: 100 samples at 360 Hz",
        ),
        (
            [
                _tensor("signal", [1800], "FP32", SIGNAL),
                _tensor("fs", [1], "FP32", [360]),
                _tensor("r_peaks", [2], "INT64", [5, 3]),
            ],
            "inputs.r_peaks: positions must be strictly increasing",
        ),
        (
            [_tensor("signal", [1800], "FP32", SIGNAL), _tensor("ecg", [1], "FP32", [1])],
            "unknown input 'ecg'",
        ),
    ],
)
def test_bad_inputs_are_400_with_the_v2_error(
    api: Api, inputs: list[dict[str, Any]], message: str
) -> None:
    response = api.client.post(
        f"/v2/models/{XGB}/infer", json={"inputs": inputs}, headers=api.headers()
    )
    assert response.status_code == 400, response.text
    assert list(response.json()) == ["error"]
    assert message in response.json()["error"]


@pytest.mark.parametrize(
    ("payload", "message"),
    [
        ({}, "body.inputs: Field required"),
        ({"inputs": []}, "body.inputs: List should have at least 1 item"),
        ({"inputs": [{"name": "signal"}]}, "body.inputs.0.shape: Field required"),
        ({"inputs": [_tensor("fs", [1], "FP99", [1])]}, "body.inputs.0.datatype"),
        ({"inputs": [_tensor("fs", [1], "FP32", [1])], "outputs": [{"name": "x"}]}, ""),
        (
            {"inputs": [_tensor("fs", [1], "FP32", [1])], "extra": 1},
            "body.extra: Extra inputs are not permitted",
        ),
    ],
)
def test_malformed_bodies_are_400_with_the_v2_error(
    api: Api, payload: dict[str, Any], message: str
) -> None:
    response = api.client.post(f"/v2/models/{XGB}/infer", json=payload, headers=api.headers())
    assert response.status_code == 400, response.text
    assert message in response.json()["error"]


def test_a_body_without_content_type_is_read_as_json(api: Api, strips: list[np.ndarray]) -> None:
    import json

    response = api.client.post(
        f"/v2/models/{XGB}/infer",
        content=json.dumps(infer_body(strips[0])).encode(),
        headers=api.headers(),  # no Content-Type, as tritonclient sends it
    )
    assert response.status_code == 200, response.text


def test_malformed_json_binary_extension_and_unknown_output(
    api: Api, strips: list[np.ndarray]
) -> None:
    headers = {**api.headers(), "Content-Type": "application/json"}
    broken = api.client.post(f"/v2/models/{XGB}/infer", content=b"{not json", headers=headers)
    assert broken.status_code == 400
    assert "JSON" in broken.json()["error"]
    binary = api.client.post(
        f"/v2/models/{XGB}/infer",
        json=infer_body(strips[0]),
        headers={**api.headers(), "Inference-Header-Content-Length": "10"},
    )
    assert binary.status_code == 400
    assert "binary tensor data extension is not supported" in binary.json()["error"]
    unknown = api.client.post(
        f"/v2/models/{XGB}/infer",
        json=infer_body(strips[0], outputs=[{"name": "logits"}]),
        headers=api.headers(),
    )
    assert unknown.status_code == 400
    assert "unknown output 'logits'" in unknown.json()["error"]


def test_token_as_api_v1(api: Api, strips: list[np.ndarray]) -> None:
    no_token = api.client.post(f"/v2/models/{XGB}/infer", json=infer_body(strips[0]))
    assert no_token.status_code == 401
    assert no_token.headers["www-authenticate"] == "Bearer"
    assert list(no_token.json()) == ["error"]
    assert api.client.get(f"/v2/models/{XGB}").status_code == 401
    assert api.client.get(f"/v2/models/{XGB}/ready").status_code == 401
    forged = api.client.post(
        f"/v2/models/{XGB}/infer",
        json=infer_body(strips[0]),
        headers={"Authorization": f"Bearer {api.token('carla', secret='another-secret-' * 3)}"},
    )
    assert forged.status_code == 401
    assert "unknown key" in forged.json()["error"]


def test_infer_is_audited_answered_or_refused(
    registry: Registry, start_api: Callable[..., Api], strips: list[np.ndarray]
) -> None:
    api = start_api(max_body_bytes=64 * 1024)
    signal = strips[1]
    answered = api.client.post(
        f"/v2/models/{XGB}/infer", json=infer_body(signal), headers=api.headers("carla")
    )
    refused = api.client.post(
        f"/v2/models/{XGB}/infer", json=infer_body(signal, fs=20), headers=api.headers("carla")
    )
    too_big = api.client.post(
        f"/v2/models/{XGB}/versions/1/infer",
        content=b"{" + b" " * (70 * 1024) + b"}",
        headers={**api.headers("carla"), "Content-Type": "application/json"},
    )
    assert (answered.status_code, refused.status_code, too_big.status_code) == (200, 400, 413)
    assert list(too_big.json()) == ["error"]
    records = sorted(api.audit_records(), key=lambda r: r.occurred_at)
    assert [(r.route, r.status_code, r.username) for r in records] == [
        ("/v2/models/{model_name}/infer", 200, "carla"),
        ("/v2/models/{model_name}/infer", 400, "carla"),
        ("/v2/models/{model_name}/versions/{model_version}/infer", 413, "carla"),
    ]
    first = records[0]
    labels = {o["name"]: o for o in answered.json()["outputs"]}["label"]["data"]
    assert (first.model_name, first.n_beats) == (XGB, len(labels))
    assert first.signal_sha256 == signal_sha256([float(v) for v in signal])
    assert first.request_id == answered.headers["x-request-id"]


def test_not_ready_answers_503(registry: Registry, start_api: Callable[..., Api]) -> None:
    registry.clear_production(XGB)
    api = start_api()
    assert api.client.get("/v2/health/ready").status_code == 503
    ready = api.client.get(f"/v2/models/{XGB}/ready", headers=api.headers())
    assert (ready.status_code, ready.json()) == (503, {"name": XGB, "ready": False})
    infer = api.client.post(
        f"/v2/models/{XGB}/infer", json=infer_body(np.zeros(1800)), headers=api.headers()
    )
    assert infer.status_code == 503
    assert "has no loaded version" in infer.json()["error"]


def test_the_protocol_is_in_the_openapi_document(api: Api) -> None:
    paths = api.client.get("/api/openapi.json").json()["paths"]
    for path in (
        "/v2",
        "/v2/health/live",
        "/v2/health/ready",
        "/v2/models/{model_name}",
        "/v2/models/{model_name}/versions/{model_version}",
        "/v2/models/{model_name}/ready",
        "/v2/models/{model_name}/infer",
        "/v2/models/{model_name}/versions/{model_version}/infer",
    ):
        assert path in paths, path
        for operation in paths[path].values():  # no stray query parameters
            assert all(p["in"] == "path" for p in operation.get("parameters", [])), path
