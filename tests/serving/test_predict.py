"""Predictions through the API: the answer's shape, parity with the in-process model, batching."""

from __future__ import annotations

import threading
from collections.abc import Callable

import numpy as np
import pytest

from hearteye.labels import AAMI_CLASSES
from hearteye.model.wrapper import ARTIFACT_KEY, ECGBeatModel
from serving.schemas import PredictBatchResponse, PredictResponse
from tests.serving.conftest import BILSTM, XGB, Api, Registry, body

pytestmark = [pytest.mark.slow, pytest.mark.data]


def _in_process(registry: Registry, name: str, version: str) -> ECGBeatModel:
    model = ECGBeatModel()
    model.load_dir(registry.model_dir(name, version) / "artifacts" / ARTIFACT_KEY)
    return model


def test_predict_answers_with_the_production_version_and_matches_the_model(
    api: Api, registry: Registry, strips: list[np.ndarray]
) -> None:
    version = registry.store.versions[XGB][0]
    model = _in_process(registry, XGB, version)
    mv = registry.client.get_model_version(XGB, version)

    for signal in strips:
        response = api.client.post("/api/v1/predict", json=body(signal), headers=api.headers())

        assert response.status_code == 200, response.text
        answer = response.json()
        assert list(answer) == ["request_id", "model", "fs", "beats", "counts"]
        # The route serialises plain values (no response validation): they must fit the schema.
        assert PredictResponse.model_validate(answer).model_dump(mode="json") == answer
        assert answer["request_id"] == response.headers["x-request-id"]
        assert answer["model"] == {"name": XGB, "version": version, "run_id": mv.run_id}
        assert answer["fs"] == 360.0
        expected = model.predict_strip(signal, 360.0)
        assert [b["sample"] for b in answer["beats"]] == expected.samples.tolist()
        assert [b["label"] for b in answer["beats"]] == expected.labels
        got = np.array([[b["probabilities"][c] for c in AAMI_CLASSES] for b in answer["beats"]])
        np.testing.assert_allclose(got, expected.probabilities, atol=1e-6)
        assert answer["counts"] == expected.counts()
        assert sum(answer["counts"].values()) == len(answer["beats"]) > 5
        for beat in answer["beats"]:
            assert beat["time_s"] == pytest.approx(beat["sample"] / 360.0, abs=1e-4)
            assert beat["label"] == max(beat["probabilities"], key=beat["probabilities"].get)


def test_given_r_peaks_are_used_and_other_rates_accepted(
    api: Api, strips: list[np.ndarray]
) -> None:
    from scipy.signal import resample_poly

    signal = strips[0]
    peaks = [400, 700, 1000]
    response = api.client.post(
        "/api/v1/predict", json=body(signal, r_peaks=peaks), headers=api.headers()
    )
    assert response.status_code == 200, response.text
    assert [b["sample"] for b in response.json()["beats"]] == peaks

    at_250 = resample_poly(signal, 25, 36)
    response = api.client.post("/api/v1/predict", json=body(at_250, fs=250), headers=api.headers())
    assert response.status_code == 200, response.text
    assert response.json()["fs"] == 250.0
    assert len(response.json()["beats"]) > 5


def test_batch_answers_each_strip_in_order(
    api: Api, registry: Registry, strips: list[np.ndarray]
) -> None:
    model = _in_process(registry, XGB, registry.store.versions[XGB][0])
    response = api.client.post(
        "/api/v1/predict/batch",
        json={"strips": [body(s) for s in strips], "model": XGB},
        headers=api.headers(),
    )
    assert response.status_code == 200, response.text
    answer = response.json()
    assert PredictBatchResponse.model_validate(answer).model_dump(mode="json") == answer
    assert answer["model"]["name"] == XGB
    assert len(answer["results"]) == len(strips)
    for result, signal in zip(answer["results"], strips, strict=True):
        assert [b["label"] for b in result["beats"]] == model.predict_strip(signal, 360.0).labels


def test_concurrent_requests_share_classifier_calls(api: Api, strips: list[np.ndarray]) -> None:
    batcher = api.runtime.batchers[XGB]
    headers = api.headers()
    results: list[int] = []

    def send(signal: np.ndarray) -> None:
        response = api.client.post("/api/v1/predict", json=body(signal), headers=headers)
        results.append(response.status_code)

    before = (batcher.batches, batcher.strips)
    threads = [threading.Thread(target=send, args=(strips[i % len(strips)],)) for i in range(24)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert results == [200] * 24
    assert batcher.strips - before[1] == 24
    assert batcher.batches - before[0] <= 24  # gathered when they overlap (never more calls)


def test_unbatched_models_use_the_thread_pool(
    registry: Registry, start_api: Callable[..., Api], strips: list[np.ndarray]
) -> None:
    api = start_api(micro_batch_models=[])
    assert api.runtime.batchers == {}
    response = api.client.post("/api/v1/predict", json=body(strips[1]), headers=api.headers())
    assert response.status_code == 200, response.text


def test_two_models_served_side_by_side(
    both_registry: Registry, start_api: Callable[..., Api], strips: list[np.ndarray]
) -> None:
    version = both_registry.store.versions[BILSTM][0]
    api = start_api(models=[XGB, BILSTM])
    model = _in_process(both_registry, BILSTM, version)

    response = api.client.post(
        "/api/v1/predict", json=body(strips[2], model=BILSTM), headers=api.headers()
    )

    assert response.status_code == 200, response.text
    assert response.json()["model"] == {
        "name": BILSTM,
        "version": version,
        "run_id": both_registry.client.get_model_version(BILSTM, version).run_id,
    }
    expected = model.predict_strip(strips[2], 360.0)
    assert [b["label"] for b in response.json()["beats"]] == expected.labels
    default = api.client.post("/api/v1/predict", json=body(strips[2]), headers=api.headers())
    assert default.json()["model"]["name"] == XGB
    models = api.client.get("/api/v1/models", headers=api.headers()).json()["models"]
    assert {m["name"]: m["micro_batched"] for m in models} == {XGB: True, BILSTM: True}
