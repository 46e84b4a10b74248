"""Quick XGBoost training end to end on the embedded store: what is logged, registered and loaded."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from hearteye.dataset import build_dataset
from hearteye.labels import SPLIT_PROTOCOL
from hearteye.model.wrapper import ECGBeatModel, StripInput
from hearteye.preprocess.config import PreprocessConfig
from hearteye.records import load_record
from tests.training.conftest import TrainedStore

pytestmark = [pytest.mark.data, pytest.mark.slow]

METRIC_NAMES = {
    *(f"ds2_{c}_{m}" for c in "NSVF" for m in ("sensitivity", "ppv", "f1")),
    "ds2_macro_f1",
    "ds2_accuracy",
}


def _client(store: TrainedStore):
    from mlflow import MlflowClient

    return MlflowClient(tracking_uri=store.tracking_uri, registry_uri=store.tracking_uri)


def test_run_registers_a_version_with_metrics_tags_and_lineage(quick_xgboost: TrainedStore) -> None:
    client = _client(quick_xgboost)
    result = quick_xgboost.result
    assert result.model == "ecg-xgboost"
    assert result.version == "1"
    assert set(result.metrics) == METRIC_NAMES
    assert all(0.0 <= v <= 1.0 for v in result.metrics.values())

    version = client.get_model_version("ecg-xgboost", "1")
    assert version.run_id == result.run_id
    for name in METRIC_NAMES:
        assert float(version.tags[name]) == pytest.approx(result.metrics[name], abs=1e-6)
    assert version.tags["split_protocol"] == SPLIT_PROTOCOL
    assert len(version.tags["dataset_digest"]) == 64
    assert version.tags["model_kind"] == "xgboost"
    assert version.tags["code_version"]
    # Registration never touches the production alias.
    assert client.get_registered_model("ecg-xgboost").aliases == {}

    run = client.get_run(result.run_id)
    assert set(run.data.metrics) >= METRIC_NAMES
    assert run.data.params["preprocess.fs"] == "360"
    assert run.data.params["seed"] == "0"
    assert "xgb.max_depth" in run.data.params
    assert run.data.tags["git_commit"]
    assert "lib.mlflow" in run.data.tags
    contexts = {
        inp.dataset.name: {t.key: t.value for t in inp.tags}["mlflow.data.context"]
        for inp in run.inputs.dataset_inputs
    }
    assert contexts == {"mitdb-DS1": "training", "mitdb-DS2": "evaluation"}
    digests = {inp.dataset.digest for inp in run.inputs.dataset_inputs}
    assert version.tags["dataset_digest"][:32] in digests
    artifacts = {a.path for a in client.list_artifacts(result.run_id, "evaluation")}
    assert {
        "evaluation/confusion_matrix.png",
        "evaluation/class_metrics.png",
        "evaluation/metrics_table.md",
    } <= artifacts


def test_training_leaves_no_process_wide_mlflow_state(quick_xgboost: TrainedStore) -> None:
    """train() gets its own client; the mlflow library is not left pointing at the store."""
    assert quick_xgboost.uri_left_set is None


def _download(store: TrainedStore, destination: Path) -> str:
    """The registered version's files, read from the store named explicitly (MLflow resolves a
    ``models:/name/version`` URI through the process-wide registry URI, so locate it first)."""
    import mlflow

    return mlflow.artifacts.download_artifacts(
        _client(store).get_model_version_download_uri("ecg-xgboost", "1"),
        dst_path=str(destination),
        tracking_uri=store.tracking_uri,
        registry_uri=store.tracking_uri,
    )


def test_logged_model_has_signature_and_a_real_input_example(
    quick_xgboost: TrainedStore, tmp_path: Path
) -> None:
    import mlflow
    from mlflow.models import Model

    local = _download(quick_xgboost, tmp_path)
    info = Model.load(local)
    assert info.signature is not None
    assert [c.name for c in info.signature.inputs.inputs] == ["signal", "fs", "r_peaks"]
    example = info.load_input_example(local)
    assert example["fs"] == 360.0
    assert len(example["signal"]) == 3600
    # The pyfunc path (pandas, as `mlflow models serve` uses it) answers the example.
    model = mlflow.pyfunc.load_model(local)
    out = model.predict(example)
    assert list(out.columns[:4]) == ["strip", "sample", "time_s", "label"]
    assert 8 <= len(out) <= 20  # a 10-s strip holds about a dozen beats
    assert np.allclose(out.filter(like="prob_").sum(axis=1), 1.0, atol=1e-5)


def test_parity_between_training_path_and_the_registered_model(
    quick_xgboost: TrainedStore, mitdb_dir: Path, tmp_path: Path
) -> None:
    """Same record: training's windows/features == the loaded model's, predictions identical."""
    import mlflow

    pyfunc = mlflow.pyfunc.load_model(_download(quick_xgboost, tmp_path))
    loaded = pyfunc.unwrap_python_model()
    assert isinstance(loaded, ECGBeatModel)
    record = load_record(mitdb_dir, "118")
    trained = build_dataset(mitdb_dir, ["118"], PreprocessConfig())
    served = loaded.preprocess(StripInput(record.signal, record.fs, record.beat_samples))
    np.testing.assert_array_equal(served.beats.windows, trained.windows)
    np.testing.assert_array_equal(served.beats.features, trained.features)
    np.testing.assert_array_equal(served.samples, record.beat_samples)

    in_memory = quick_xgboost.result.classifier.predict_proba(served.beats)
    from_registry = loaded.classifier.predict_proba(served.beats)
    np.testing.assert_array_equal(from_registry, in_memory)
    # The fast path and the pyfunc path agree on a raw strip with detected peaks.
    strip = record.signal[: 3600 * 2]
    fast = loaded.predict_strip(strip, record.fs)
    slow = pyfunc.predict({"signal": strip.tolist(), "fs": 360.0})
    np.testing.assert_array_equal(slow["sample"].to_numpy(), fast.samples)
    assert slow["label"].tolist() == fast.labels
