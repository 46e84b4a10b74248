"""Promote, refuse, force, roll back and read the history on the embedded (sqlite) store."""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable
from pathlib import Path
from urllib.parse import urlparse

import pytest

from hearteye.registry import (
    AUDIT_EXPERIMENT,
    GateRefusedError,
    NothingToRollBackError,
    Registry,
    RegistryError,
    connect,
    get_history,
    get_model,
    get_production_version,
    list_models,
    promote,
    rollback,
)
from hearteye.registry.ledger import STATE_ABORTED, TAG_STATE
from tests.registry.conftest import Register, model_files
from tests.registry.fakes import NAN_WEIGHTS


def test_promote_moves_the_alias_and_records_the_event(
    registry: Registry, register: Register
) -> None:
    v1 = register()
    assert get_production_version(registry, "ecg-xgboost") is None

    event = promote(registry, "ecg-xgboost", v1, reason="first model")

    assert get_production_version(registry, "ecg-xgboost") == v1
    assert (event.action, event.from_version, event.to_version) == ("promote", None, v1)
    assert event.reason == "first model"
    assert not event.forced
    assert event.actor  # the OS user on the embedded store
    assert event.gate["passed"] is True
    assert {c["name"] for c in event.gate["checks"]} >= {"artifacts", "split protocol"}
    [recorded] = get_history(registry, "ecg-xgboost")
    assert recorded == event
    info = get_model(registry, "ecg-xgboost")
    assert (info.production_version, info.promoted_by, info.promoted_at) == (
        v1,
        event.actor,
        event.time,
    )
    assert registry.client.get_experiment_by_name(AUDIT_EXPERIMENT) is not None


def test_gate_refusal_names_each_failing_check_and_changes_nothing(
    registry: Registry, register: Register
) -> None:
    v1 = register()
    promote(registry, "ecg-xgboost", v1)
    worse = register(ds2_S_sensitivity=0.70, ds2_V_ppv=0.85)  # floor fails; V +P regresses 0.07

    with pytest.raises(GateRefusedError) as refused:
        promote(registry, "ecg-xgboost", worse)

    message = str(refused.value)
    assert "floor ds2_S_sensitivity: candidate 0.7000, required > 0.7600" in message
    assert f"regression ds2_V_ppv: candidate 0.8500, required >= production v{v1} 0.9200" in message
    assert {c.name for c in refused.value.result.failures} == {
        "floor ds2_S_sensitivity",
        "regression ds2_S_sensitivity",
        "regression ds2_V_ppv",
    }
    assert get_production_version(registry, "ecg-xgboost") == v1
    assert len(get_history(registry, "ecg-xgboost")) == 1


def test_force_requires_a_reason_and_records_the_override(
    registry: Registry, register: Register
) -> None:
    v1 = register()
    promote(registry, "ecg-xgboost", v1)
    weak = register(ds2_S_ppv=0.30)

    with pytest.raises(RegistryError, match="--force requires --reason"):
        promote(registry, "ecg-xgboost", weak, force=True)
    with pytest.raises(RegistryError, match="--force requires --reason"):
        promote(registry, "ecg-xgboost", weak, force=True, reason="   ")

    event = promote(registry, "ecg-xgboost", weak, force=True, reason="clinical sign-off #12")

    assert get_production_version(registry, "ecg-xgboost") == weak
    assert event.forced
    assert event.reason == "clinical sign-off #12"
    newest = get_history(registry, "ecg-xgboost")[0]
    assert newest.forced
    assert newest.gate["forced"] is True
    assert newest.gate["passed"] is False
    failed = [c["name"] for c in newest.gate["checks"] if not c["passed"]]
    assert failed == ["floor ds2_S_ppv", "regression ds2_S_ppv"]


def test_wrong_protocol_is_refused(registry: Registry, register: Register) -> None:
    version = register(protocol="random-beat-split")
    with pytest.raises(GateRefusedError, match="split protocol: candidate random-beat-split"):
        promote(registry, "ecg-xgboost", version)


def test_broken_artifacts_are_refused_even_with_force(
    registry: Registry, register: Register, log_model: Callable[..., str]
) -> None:
    v1 = register()
    promote(registry, "ecg-xgboost", v1)
    uri = log_model()
    broken = register(model_uri=uri)
    location = registry.client.get_logged_model(uri.removeprefix("models:/")).artifact_location
    booster = Path(urlparse(location).path) / "artifacts/beat_model/classifier/booster.ubj"
    booster.write_bytes(b"not a booster")

    with pytest.raises(GateRefusedError, match="artifacts") as refused:
        promote(registry, "ecg-xgboost", broken)
    assert [c.name for c in refused.value.result.failures] == ["artifacts"]
    with pytest.raises(GateRefusedError, match="not overridable"):
        promote(registry, "ecg-xgboost", broken, force=True, reason="urgent")
    assert get_production_version(registry, "ecg-xgboost") == v1


def test_a_version_serving_would_refuse_is_refused_at_promotion(
    registry: Registry, register: Register, log_model: Callable[..., str]
) -> None:
    """A real beat model whose operating point went wrong (NaN probabilities): it loads and answers
    rows, so a gate that only wants an answer passed it, and every serving worker refused it."""
    from serving.loading import VersionLoadError, load_version

    uri = log_model(class_weights=NAN_WEIGHTS)
    with pytest.raises(VersionLoadError, match="smoke failed: probabilities are not finite"):
        load_version("ecg-xgboost", "0", None, model_files(registry, uri), "registry")

    v1 = register()
    promote(registry, "ecg-xgboost", v1)
    bad = register(model_uri=uri)
    with pytest.raises(GateRefusedError, match="probabilities are not finite / normalised"):
        promote(registry, "ecg-xgboost", bad)
    with pytest.raises(GateRefusedError, match="not overridable"):
        promote(registry, "ecg-xgboost", bad, force=True, reason="urgent")
    assert get_production_version(registry, "ecg-xgboost") == v1


def test_promoting_the_production_version_again_is_an_error(
    registry: Registry, register: Register
) -> None:
    v1 = register()
    promote(registry, "ecg-xgboost", v1)
    with pytest.raises(RegistryError, match="already production"):
        promote(registry, "ecg-xgboost", v1)


def test_rollback_walks_back_through_the_promotions(registry: Registry, register: Register) -> None:
    v1, v2, v3 = register(), register(), register()
    for version in (v1, v2, v3):
        promote(registry, "ecg-xgboost", version)

    first = rollback(registry, "ecg-xgboost", reason="v3 misreads paced beats")
    assert (first.action, first.from_version, first.to_version) == ("rollback", v3, v2)
    assert first.reason == "v3 misreads paced beats"
    assert [c["name"] for c in first.gate["checks"]] == ["artifacts"]
    second = rollback(registry, "ecg-xgboost")
    assert (second.from_version, second.to_version) == (v2, v1)
    assert get_production_version(registry, "ecg-xgboost") == v1
    with pytest.raises(NothingToRollBackError, match="nothing to roll back to"):
        rollback(registry, "ecg-xgboost")


def test_rollback_to_a_named_earlier_version(registry: Registry, register: Register) -> None:
    v1, v2, v3, never = register(), register(), register(), register()
    for version in (v1, v2, v3):
        promote(registry, "ecg-xgboost", version)

    with pytest.raises(RegistryError, match="was never production"):
        rollback(registry, "ecg-xgboost", to=never)
    event = rollback(registry, "ecg-xgboost", to=v1)
    assert (event.from_version, event.to_version) == (v3, v1)
    with pytest.raises(NothingToRollBackError):
        rollback(registry, "ecg-xgboost")


def test_rollback_with_no_history_is_a_clear_error(registry: Registry, register: Register) -> None:
    register()
    with pytest.raises(NothingToRollBackError, match="current: none"):
        rollback(registry, "ecg-xgboost")
    v2 = register()
    promote(registry, "ecg-xgboost", v2)
    with pytest.raises(NothingToRollBackError, match=f"current: v{v2}"):
        rollback(registry, "ecg-xgboost")


def test_history_is_newest_first_with_full_content(registry: Registry, register: Register) -> None:
    v1, v2 = register(), register()
    promote(registry, "ecg-xgboost", v1, reason="baseline")
    promote(registry, "ecg-xgboost", v2)
    rollback(registry, "ecg-xgboost", reason="drift")
    with pytest.raises(GateRefusedError):
        promote(registry, "ecg-xgboost", register(ds2_V_sensitivity=0.5))

    history = get_history(registry, "ecg-xgboost")

    assert [(e.seq, e.action, e.from_version, e.to_version) for e in history] == [
        (3, "rollback", v2, v1),
        (2, "promote", v1, v2),
        (1, "promote", None, v1),
    ]
    assert [e.reason for e in history] == ["drift", None, "baseline"]
    assert history[0].time > history[1].time > history[2].time
    assert all(e.time.endswith("+00:00") for e in history)
    assert set(history[0].to_dict()) == {
        "action",
        "model",
        "from_version",
        "to_version",
        "actor",
        "time",
        "reason",
        "forced",
        "gate",
    }
    assert get_history(registry, "ecg-bilstm") == []


def test_refused_promotions_leave_no_pending_events(registry: Registry, register: Register) -> None:
    promote(registry, "ecg-xgboost", register())
    with pytest.raises(GateRefusedError):
        promote(registry, "ecg-xgboost", register(ds2_S_ppv=0.1))
    experiment = registry.client.get_experiment_by_name(AUDIT_EXPERIMENT)
    runs = registry.client.search_runs([experiment.experiment_id])
    states = sorted(r.data.tags.get(TAG_STATE, "") for r in runs)
    # The refusal happened in the plan, before any event run was created.
    assert states == ["", "completed"]  # the ledger run, one completed event
    assert STATE_ABORTED not in states


def test_list_models_shows_versions_metrics_and_production(
    registry: Registry, register: Register
) -> None:
    v1 = register()
    register(name="ecg-bilstm")
    promote(registry, "ecg-xgboost", v1)

    infos = {info.name: info for info in list_models(registry)}

    assert set(infos) == {"ecg-xgboost", "ecg-bilstm"}
    xgb = infos["ecg-xgboost"].to_dict()
    assert xgb["production_version"] == v1
    assert xgb["versions"][0]["metrics"]["ds2_V_ppv"] == pytest.approx(0.92)
    assert xgb["versions"][0]["tags"]["split_protocol"] == "inter-patient-DS1-DS2"
    assert infos["ecg-bilstm"].production_version is None


def test_registry_handles_keep_no_process_wide_mlflow_state(
    registry: Registry,
    register: Register,
    template_db: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A second handle, on another store, does not redirect the first one's gate."""
    import mlflow

    from hearteye.settings import HearteyeSettings

    version = register()
    other = tmp_path / "other.db"
    shutil.copy(template_db, other)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{other}")
    connect(probe=False)
    event = promote(registry, "ecg-xgboost", version)  # downloads from `registry`'s own store
    assert event.to_version == version

    monkeypatch.delenv("MLFLOW_TRACKING_URI")
    connect(HearteyeSettings(home=tmp_path / "embedded"), probe=False)
    assert not mlflow.is_tracking_uri_set()
    assert "MLFLOW_TRACKING_URI" not in os.environ
