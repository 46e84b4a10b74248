"""`ml evaluate`: a registered version scored on annotated WFDB records at 360, 250 and 128 Hz,
logged on the version, and required by the promotion gate."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from click.testing import CliRunner

from cli.main import cli
from hearteye.evaluation.annotated import match_beats
from hearteye.labels import AAMI_MAP
from tests.training.conftest import TrainedStore

RECORDS = ("101", "106")  # DS1: one mostly normal, one with many V beats


def test_matching_uses_a_closed_150_ms_window() -> None:
    fs = 1000.0
    reference = np.array([1000, 2000, 3000, 4000], np.int64)
    detected = np.array([1150, 1990, 3151, 5000], np.int64)
    ref_idx, det_idx = match_beats(reference, detected, fs, 0.150)
    assert ref_idx.tolist() == [0, 1]  # 150 ms apart matches, 151 ms does not
    assert det_idx.tolist() == [0, 1]
    empty = match_beats(reference, np.zeros(0, np.int64), fs, 0.150)
    assert [len(a) for a in empty] == [0, 0]


# -- against a registered version ---------------------------------------------------------------


@pytest.fixture
def store(quick_xgboost: TrainedStore, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    """A private copy of the session's quick-trained ecg-xgboost v1 store (this test may tag it)."""
    db = tmp_path / "registry" / "mlflow.db"
    db.parent.mkdir()
    shutil.copy(quick_xgboost.tracking_uri.removeprefix("sqlite:///"), db)
    uri = f"sqlite:///{db}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    return uri


def _copy_records(mitdb_dir: Path, target: Path) -> Path:
    target.mkdir()
    for name in RECORDS:
        for suffix in (".hea", ".dat", ".atr"):
            shutil.copy(mitdb_dir / f"{name}{suffix}", target / f"{name}{suffix}")
    return target


def _resampled(mitdb_dir: Path, target: Path, fs: int) -> Path:
    """RECORDS resampled to ``fs`` (both leads), annotations moved to the new sample grid."""
    import wfdb
    from scipy.signal import resample_poly

    target.mkdir()
    for name in RECORDS:
        record = wfdb.rdrecord(str(mitdb_dir / name))
        ann = wfdb.rdann(str(mitdb_dir / name), "atr")
        signal = resample_poly(record.p_signal, fs, int(record.fs), axis=0)
        wfdb.wrsamp(
            name,
            fs=fs,
            units=record.units,
            sig_name=record.sig_name,
            p_signal=signal,
            fmt=["16"] * signal.shape[1],
            adc_gain=[200.0] * signal.shape[1],
            baseline=[0] * signal.shape[1],
            write_dir=str(target),
        )
        samples = np.round(ann.sample * fs / record.fs).astype(np.int64)
        keep = samples < len(signal)
        wfdb.wrann(
            name,
            "atr",
            samples[keep],
            symbol=list(np.asarray(ann.symbol)[keep]),
            fs=fs,
            write_dir=str(target),
        )
    return target


def _evaluate(*args: str) -> dict[str, Any]:
    result = CliRunner().invoke(cli, ["evaluate", *args, "--json"], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def _reference_beats(directory: Path) -> int:
    import wfdb

    return sum(
        sum(s in AAMI_MAP for s in wfdb.rdann(str(directory / name), "atr").symbol)
        for name in RECORDS
    )


@pytest.mark.data
@pytest.mark.slow
def test_evaluate_at_360_250_and_128_hz(store: str, mitdb_dir: Path, tmp_path: Path) -> None:
    original = _copy_records(mitdb_dir, tmp_path / "mitdb")
    scores = {}
    for fs, directory in (
        (360, original),
        (250, _resampled(mitdb_dir, tmp_path / "at250", 250)),
        (128, _resampled(mitdb_dir, tmp_path / "at128", 128)),
    ):
        out = _evaluate("ecg-xgboost", "1", "--records", str(directory))
        assert [r["fs"] for r in out["records"]] == [fs, fs]
        assert {r["lead"] for r in out["records"]} == {"MLII"}
        matched = int(np.sum(out["confusion"]))
        # Every reference beat is either matched or missed; every detection matched or extra.
        assert matched + sum(out["missed"].values()) == _reference_beats(directory)
        assert sum(r["detected_beats"] for r in out["records"]) == matched + out["extra"]
        metrics = out["metrics"]
        assert metrics["detector_sensitivity"] > 0.97, (fs, metrics)
        assert metrics["detector_ppv"] > 0.97, (fs, metrics)
        assert metrics["V_sensitivity"] > 0.8, (fs, metrics)  # 106 has ~500 V beats
        scores[fs] = metrics["accuracy"]
    # The model's own preprocessing resamples: the lower rates score close to the original.
    assert abs(scores[250] - scores[360]) < 0.03, scores
    assert abs(scores[128] - scores[360]) < 0.05, scores


@pytest.mark.data
@pytest.mark.slow
def test_reference_peaks_match_every_beat(store: str, mitdb_dir: Path, tmp_path: Path) -> None:
    directory = _copy_records(mitdb_dir, tmp_path / "mitdb")
    out = _evaluate("ecg-xgboost", "1", "--records", str(directory), "--reference-peaks")
    assert out["extra"] == 0
    missed = sum(out["missed"].values())
    assert missed <= 4, out["missed"]  # at most the beats too close to a record's ends
    # For people: the per-class table, the confusion matrix with missed/extra, the detector line.
    result = CliRunner().invoke(cli, ["evaluate", "ecg-xgboost", "1", "--records", str(directory)])
    assert result.exit_code == 0, result.output
    print(result.stdout)
    for text in ("Se", "+P", "F1", "macro", "missed", "extra", "detector: Se"):
        assert text in result.stdout, text


@pytest.mark.data
@pytest.mark.slow
def test_logged_evaluation_is_on_the_version_and_the_gate_can_require_it(
    store: str, mitdb_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from mlflow import MlflowClient

    from hearteye.registry import connect, plan_promotion
    from hearteye.registry.evaluations import EVALUATION_EXPERIMENT
    from hearteye.settings import HearteyeSettings

    directory = _copy_records(mitdb_dir, tmp_path / "ward-7")
    out = _evaluate("ecg-xgboost", "1", "--records", str(directory), "--log")
    client = MlflowClient(tracking_uri=store, registry_uri=store)
    run = client.get_run(out["logged"]["run_id"])
    assert run.info.status == "FINISHED"
    assert (
        run.info.experiment_id == client.get_experiment_by_name(EVALUATION_EXPERIMENT).experiment_id
    )
    assert run.data.metrics["eval_macro_f1"] == pytest.approx(out["metrics"]["macro_f1"])
    assert run.inputs.dataset_inputs[0].dataset.name == "ward-7"
    version = client.get_model_version("ecg-xgboost", "1")
    assert version.source == f"models:/{run.inputs.model_inputs[0].model_id}"
    summary = json.loads(version.tags[out["logged"]["tag"]])
    assert summary["run_id"] == run.info.run_id
    assert summary["digest"] == out["digest"]

    def gate(**changes: object) -> dict[str, Any]:
        settings = HearteyeSettings(**changes)  # type: ignore[arg-type]
        checks = plan_promotion(connect(settings), "ecg-xgboost", "1").gate.checks
        return {c.name: c for c in checks if c.name.startswith("evaluation")}

    assert gate() == {}  # nothing required by default
    digest_id = out["digest"][:16]
    passed = gate(gate_required_evaluations=out["digest"])[f"evaluation {digest_id}"]
    assert passed.passed
    assert passed.value == pytest.approx(round(out["metrics"]["macro_f1"], 4))
    too_high = gate(gate_required_evaluations=digest_id, gate_min_evaluation_macro_f1=0.999)
    assert not too_high[f"evaluation {digest_id}"].passed
    other = "0123456789abcdef"
    missing = gate(gate_required_evaluations=other)[f"evaluation {other}"]
    assert not missing.passed
    assert "ml evaluate" in missing.detail


@pytest.mark.data
def test_bad_input_is_a_clear_error(mitdb_dir: Path, tmp_path: Path) -> None:
    runner = CliRunner()
    result = runner.invoke(cli, ["evaluate", "ecg-xgboost", "1", "--records", str(tmp_path / "no")])
    assert result.exit_code == 1
    assert "does not exist" in result.output
    (tmp_path / "empty").mkdir()
    shutil.copy(mitdb_dir / "101.hea", tmp_path / "empty" / "101.hea")
    result = runner.invoke(
        cli, ["evaluate", "ecg-xgboost", "1", "--records", str(tmp_path / "empty")]
    )
    assert result.exit_code == 1
    assert "no annotated WFDB record" in result.output
    from hearteye.settings import HearteyeSettings

    with pytest.raises(ValueError, match="not a data set digest"):
        HearteyeSettings(gate_required_evaluations="abc")
