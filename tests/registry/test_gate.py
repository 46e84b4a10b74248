"""The gate as a pure function, and the generic artifact load + smoke prediction check."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from hearteye.labels import SPLIT_PROTOCOL
from hearteye.registry import Registry, artifact_check, evaluate_gate, metric_checks
from hearteye.registry.gate import GateRefusedError, protocol_check
from hearteye.settings import HearteyeSettings
from tests.registry.conftest import model_files
from tests.registry.fakes import (
    EXAMPLE,
    GOOD_METRICS,
    NAN_WEIGHTS,
    BeatLabeler,
    requirements,
    version_tags,
)

SETTINGS = HearteyeSettings()


def tags(**overrides: float) -> dict[str, str]:
    return version_tags({**GOOD_METRICS, **overrides})


def test_good_candidate_without_production_passes_every_floor() -> None:
    checks = metric_checks(tags(), None, None, SETTINGS)
    assert [c.name for c in checks] == [
        "floor ds2_S_sensitivity",
        "floor ds2_S_ppv",
        "floor ds2_V_sensitivity",
        "floor ds2_V_ppv",
    ]
    assert all(c.passed for c in checks)
    assert checks[0].value == pytest.approx(0.82)
    assert checks[0].reference == pytest.approx(0.76)


def test_floors_are_strict_de_chazal_must_be_beaten() -> None:
    checks = metric_checks(tags(ds2_S_sensitivity=0.76, ds2_V_ppv=0.50), None, None, SETTINGS)
    failed = {c.name: c for c in checks if not c.passed}
    assert set(failed) == {"floor ds2_S_sensitivity", "floor ds2_V_ppv"}
    assert failed["floor ds2_V_ppv"].value == pytest.approx(0.50)
    assert failed["floor ds2_V_ppv"].reference == pytest.approx(0.82)


def test_floors_come_from_settings() -> None:
    strict = HearteyeSettings(gate_min_v_sensitivity=0.95)
    checks = metric_checks(tags(), None, None, strict)
    assert [c.name for c in checks if not c.passed] == ["floor ds2_V_sensitivity"]


def test_regression_beyond_tolerance_fails_and_names_both_values() -> None:
    production = tags(ds2_V_ppv=0.97, ds2_macro_f1=0.70)
    candidate = tags(ds2_V_ppv=0.94, ds2_macro_f1=0.685)  # -0.03 fails; -0.015 is tolerated
    checks = metric_checks(candidate, production, "3", SETTINGS)
    failed = [c for c in checks if not c.passed]
    assert [c.name for c in failed] == ["regression ds2_V_ppv"]
    assert failed[0].value == pytest.approx(0.94)
    assert failed[0].reference == pytest.approx(0.97)
    assert "production v3" in failed[0].describe()
    assert "0.9400" in failed[0].describe()
    assert "0.9700" in failed[0].describe()
    assert {c.name for c in checks} >= {f"regression {m}" for m in ("ds2_S_ppv", "ds2_macro_f1")}


def test_missing_or_invalid_metrics_fail_with_the_reason() -> None:
    candidate = tags()
    del candidate["ds2_S_ppv"]
    candidate["ds2_V_sensitivity"] = "91"  # a percentage, not a fraction
    failed = {c.name: c for c in metric_checks(candidate, None, None, SETTINGS) if not c.passed}
    assert failed["floor ds2_S_ppv"].detail == "no 'ds2_S_ppv' tag"
    assert "not a fraction" in failed["floor ds2_V_sensitivity"].detail


def test_production_from_another_protocol_cannot_be_compared() -> None:
    production = version_tags(GOOD_METRICS, protocol="intra-patient")
    checks = metric_checks(tags(), production, "1", SETTINGS)
    regressions = [c for c in checks if c.name.startswith("regression")]
    assert regressions
    assert not any(c.passed for c in regressions)
    assert "intra-patient" in regressions[0].detail


def test_protocol_check() -> None:
    assert protocol_check(tags()).passed
    other = protocol_check(version_tags(GOOD_METRICS, protocol="random-beats"))
    assert not other.passed
    assert other.value == "random-beats"
    assert other.reference == SPLIT_PROTOCOL
    assert not protocol_check(version_tags(GOOD_METRICS, protocol=None)).passed


def test_evaluate_gate_lists_every_check_and_refusal_names_each_failure() -> None:
    result = evaluate_gate(
        "ecg-xgboost", "4", tags(ds2_S_ppv=0.30), "3", tags(), SETTINGS, artifacts=None
    )
    assert not result.passed
    assert len(result.checks) == 1 + 4 + 5
    error = GateRefusedError(result)
    message = str(error)
    assert "floor ds2_S_ppv: candidate 0.3000, required > 0.3800" in message
    assert "regression ds2_S_ppv" in message
    assert "production v3 0.5200" in message
    assert "--force" in message
    assert result.to_dict()["checks"][0]["name"] == "split protocol"


def test_artifact_check_loads_and_predicts(registry: Registry, shared_model_uri: str) -> None:
    check = artifact_check(shared_model_uri, registry.target)
    assert check.passed, check.detail
    assert not check.overridable
    assert check.value == "12 beat(s)"  # the synthetic example's beats


def test_artifact_check_without_input_example_fails(
    registry: Registry, log_model: Callable[..., str]
) -> None:
    check = artifact_check(log_model(input_example=False), registry.target)
    assert not check.passed
    assert "input example" in check.detail


def test_artifact_check_with_missing_files_fails(
    registry: Registry, log_model: Callable[..., str]
) -> None:
    uri = log_model()
    (model_files(registry, uri) / "artifacts/beat_model/classifier/booster.ubj").unlink()
    check = artifact_check(uri, registry.target)
    assert not check.passed
    assert check.detail.startswith("load failed: ")  # names the cause


def test_artifact_check_applies_serving_rules(
    registry: Registry, log_model: Callable[..., str]
) -> None:
    """NaN probabilities, and a pyfunc that answers rows but is no beat model: both refused."""
    import mlflow

    from hearteye.tracking import ensure_experiment

    check = artifact_check(log_model(class_weights=NAN_WEIGHTS), registry.target)
    assert not check.passed
    assert check.detail == "smoke failed: probabilities are not finite / normalised"

    with mlflow.start_run(experiment_id=ensure_experiment(registry.client, registry.target, "g")):
        info = mlflow.pyfunc.log_model(
            name="model",
            python_model=BeatLabeler(),
            input_example=EXAMPLE,
            pip_requirements=requirements(),
        )
    check = artifact_check(info.model_uri, registry.target)
    assert not check.passed
    assert check.detail.startswith("load failed: model directory")
