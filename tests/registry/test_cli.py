"""The registry commands through click's CliRunner: output streams, JSON shapes, exit codes."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner, Result

from cli.main import cli
from hearteye.registry import Registry, get_production_version
from tests.registry.conftest import Register


def ml(*args: str, input: str | None = None) -> Result:
    return CliRunner().invoke(cli, list(args), input=input)


def test_promote_with_yes_then_history_and_list_as_json(
    registry: Registry, register: Register
) -> None:
    v1 = register()

    result = ml("promote", "ecg-xgboost", v1, "--yes", "--reason", "first")

    assert result.exit_code == 0, result.output
    assert f"ecg-xgboost: production none → v{v1}" in result.stdout
    assert "Gate: ecg-xgboost" in result.stderr  # the gate table is status, on stderr
    history = json.loads(ml("history", "ecg-xgboost", "--json").stdout)
    assert [(h["action"], h["from_version"], h["to_version"], h["reason"]) for h in history] == [
        ("promote", None, v1, "first")
    ]
    assert history[0]["gate"]["passed"] is True
    models = json.loads(ml("models", "list", "--json").stdout)
    assert models[0]["name"] == "ecg-xgboost"
    assert models[0]["production_version"] == v1
    assert models[0]["versions"][0]["metrics"]["ds2_S_sensitivity"] == pytest.approx(0.82)
    assert models[0]["promoted_by"] == history[0]["actor"]


def test_promote_asks_for_confirmation(registry: Registry, register: Register) -> None:
    v1 = register()
    declined = ml("promote", "ecg-xgboost", v1, input="n\n")
    assert declined.exit_code == 1
    assert "Aborted" in declined.stderr
    assert get_production_version(registry, "ecg-xgboost") is None
    accepted = ml("promote", "ecg-xgboost", v1, input="y\n")
    assert accepted.exit_code == 0, accepted.output
    assert get_production_version(registry, "ecg-xgboost") == v1


def test_gate_refusal_exits_non_zero_naming_both_values(
    registry: Registry, register: Register
) -> None:
    weak = register(ds2_V_sensitivity=0.60)
    result = ml("promote", "ecg-xgboost", weak, "--yes")
    assert result.exit_code == 1
    assert "floor ds2_V_sensitivity: candidate 0.6000, required > 0.7700" in result.stderr
    assert "FAIL" in result.stderr
    assert result.stdout == ""


def test_force_without_reason_is_a_usage_error(registry: Registry, register: Register) -> None:
    weak = register(ds2_V_sensitivity=0.60)
    result = ml("promote", "ecg-xgboost", weak, "--yes", "--force")
    assert result.exit_code == 2
    assert "--force requires --reason" in result.stderr
    forced = ml("promote", "ecg-xgboost", weak, "--yes", "--force", "--reason", "sign-off")
    assert forced.exit_code == 0, forced.output
    assert "FORCED" in forced.stdout


def test_rollback_and_nothing_to_roll_back(registry: Registry, register: Register) -> None:
    v1, v2 = register(), register()
    assert ml("promote", "ecg-xgboost", v1, "--yes").exit_code == 0
    assert ml("promote", "ecg-xgboost", v2, "--yes").exit_code == 0

    result = ml("rollback", "ecg-xgboost", "--yes")
    assert result.exit_code == 0, result.output
    assert f"production v{v2} → v{v1} (rollback #3" in result.stdout
    again = ml("rollback", "ecg-xgboost", "--yes")
    assert again.exit_code == 1
    assert "nothing to roll back to" in again.stderr
    assert "Traceback" not in again.output


def test_unknown_model_is_a_one_line_error(registry: Registry) -> None:
    for args in (("models", "show", "nope"), ("history", "nope"), ("promote", "nope", "1", "-y")):
        result = ml(*args)
        assert result.exit_code == 1
        assert "registered model 'nope' does not exist" in result.stderr


def test_models_show_model_and_version(registry: Registry, register: Register) -> None:
    v1 = register()
    shown = json.loads(ml("models", "show", "ecg-xgboost", v1, "--json").stdout)
    assert shown["version"] == v1
    assert shown["metrics"]["ds2_macro_f1"] == pytest.approx(0.69)
    assert shown["tags"]["model_kind"] == "xgboost"
    table = ml("models", "show", "ecg-xgboost", v1)
    assert table.exit_code == 0
    assert "DS2 metrics" in table.stdout
    assert "82.0" in table.stdout
    missing = ml("models", "show", "ecg-xgboost", "99")
    assert missing.exit_code == 1
    assert "has no version 99" in missing.stderr
    listing = ml("models", "list")
    assert "ecg-xgboost" in listing.stdout
    assert "no production version" in listing.stdout


def test_status_json_on_the_local_store(registry: Registry, register: Register) -> None:
    v1 = register()
    assert ml("promote", "ecg-xgboost", v1, "--yes").exit_code == 0
    payload = json.loads(ml("status", "--json").stdout)
    assert payload["reachable"] is True
    assert payload["tracking_uri"].startswith("sqlite:///")
    assert payload["models"] == {"ecg-xgboost": v1}


def test_status_reports_a_server_that_is_down_quickly(
    registry: Registry, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://127.0.0.1:9")  # discard port: refused
    result = ml("status", "--json")
    assert result.exit_code == 1
    payload = json.loads(result.stdout)
    assert payload["reachable"] is False
    assert payload["embedded"] is False
    assert "unreachable" in payload["error"]
    assert payload["models"] == {}
    listing = ml("models", "list")
    assert listing.exit_code == 1
    assert "unreachable" in listing.stderr
