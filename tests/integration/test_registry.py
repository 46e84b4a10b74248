"""The registry lifecycle against the real stack: mlflow server (PostgreSQL, SeaweedFS S3 artifacts,
basic-auth) behind nginx. The same scenarios as tests/registry, plus permissions."""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable
from pathlib import Path

import pytest
from click.testing import CliRunner

from cli.main import cli
from hearteye.labels import SPLIT_PROTOCOL
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
    promote,
    rollback,
)
from hearteye.settings import get_settings
from hearteye.tracking import TrackingError
from tests.integration.native_stack import NativeStack
from tests.registry.fakes import GOOD_METRICS, log_tiny_beat_model, version_tags
from tests.registry.test_race import assert_consistent, run_contenders

pytestmark = pytest.mark.integration

Register = Callable[..., str]


@pytest.fixture
def on_stack(
    stack_mlflow_env: NativeStack, isolated_state: Path, monkeypatch: pytest.MonkeyPatch
) -> Registry:
    """A registry handle on the stack's mlflow server, as its admin (probed: it must answer)."""
    monkeypatch.chdir(isolated_state)
    get_settings.cache_clear()
    registry = connect()
    assert not registry.target.embedded
    return registry


@pytest.fixture
def model_name() -> str:
    """A model of this test's own: the stack is shared by the whole session."""
    return f"it-ecg-{uuid.uuid4().hex[:8]}"


@pytest.fixture
def logged_model(on_stack: Registry) -> str:
    import mlflow

    from hearteye.tracking import ensure_experiment

    experiment_id = ensure_experiment(on_stack.client, on_stack.target, "it-registry")
    with mlflow.start_run(experiment_id=experiment_id):
        return log_tiny_beat_model()


@pytest.fixture
def register(on_stack: Registry, model_name: str, logged_model: str) -> Register:
    import mlflow

    def _register(model_uri: str | None = None, **overrides: float) -> str:
        mv = mlflow.register_model(model_uri or logged_model, model_name)
        version = str(mv.version)
        tags = version_tags({**GOOD_METRICS, **overrides}, SPLIT_PROTOCOL)
        for key, value in tags.items():
            on_stack.client.set_model_version_tag(model_name, version, key, value)
        return version

    return _register


def test_promote_refuse_force_and_history(
    on_stack: Registry, register: Register, model_name: str, native_stack: NativeStack
) -> None:
    v1, weak = register(), register(ds2_S_ppv=0.30)
    first = promote(on_stack, model_name, v1, reason="baseline")
    assert first.actor == native_stack.admin[0]  # the MLflow username, not the OS user

    with pytest.raises(GateRefusedError) as refused:
        promote(on_stack, model_name, weak)
    message = str(refused.value)
    assert "floor ds2_S_ppv: candidate 0.3000, required > 0.3800" in message
    assert f"regression ds2_S_ppv: candidate 0.3000, required >= production v{v1} 0.5200" in message
    with pytest.raises(RegistryError, match="--force requires --reason"):
        promote(on_stack, model_name, weak, force=True)
    assert get_production_version(on_stack, model_name) == v1

    forced = promote(on_stack, model_name, weak, force=True, reason="sign-off #7")

    assert forced.forced
    history = get_history(on_stack, model_name)
    assert [(e.seq, e.action, e.from_version, e.to_version, e.forced) for e in history] == [
        (2, "promote", v1, weak, True),
        (1, "promote", None, v1, False),
    ]
    assert [e.reason for e in history] == ["sign-off #7", "baseline"]
    assert history[0].gate["passed"] is False
    info = get_model(on_stack, model_name)
    assert (info.production_version, info.promoted_by) == (weak, native_stack.admin[0])
    # The audit trail is an ordinary experiment: visible in the MLflow UI.
    assert on_stack.client.get_experiment_by_name(AUDIT_EXPERIMENT) is not None


def test_rollback_and_nothing_to_roll_back(
    on_stack: Registry, register: Register, model_name: str
) -> None:
    v1, v2 = register(), register()
    with pytest.raises(NothingToRollBackError, match="nothing to roll back to"):
        rollback(on_stack, model_name)
    promote(on_stack, model_name, v1)
    promote(on_stack, model_name, v2)

    event = rollback(on_stack, model_name, reason="drift")

    assert (event.action, event.from_version, event.to_version) == ("rollback", v2, v1)
    assert get_production_version(on_stack, model_name) == v1
    with pytest.raises(NothingToRollBackError):
        rollback(on_stack, model_name)
    assert [e.action for e in get_history(on_stack, model_name)] == [
        "rollback",
        "promote",
        "promote",
    ]


def test_broken_artifacts_in_s3_are_refused(
    on_stack: Registry,
    register: Register,
    model_name: str,
    native_stack: NativeStack,
    logged_model: str,
) -> None:
    import mlflow

    from hearteye.tracking import ensure_experiment

    v1 = register()
    promote(on_stack, model_name, v1)
    experiment_id = ensure_experiment(on_stack.client, on_stack.target, "it-registry")
    with mlflow.start_run(experiment_id=experiment_id):
        uri = log_tiny_beat_model()
    broken = register(model_uri=uri)
    model_id = uri.removeprefix("models:/")
    s3 = native_stack.s3_client()
    bucket = native_stack.env["HEARTEYE_STACK_S3_BUCKET"]
    keys = [
        obj["Key"]
        for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket)
        for obj in page.get("Contents", [])
        if f"/{model_id}/" in obj["Key"]
    ]
    boosters = [key for key in keys if key.endswith("/classifier/booster.ubj")]
    assert boosters, keys
    s3.put_object(Bucket=bucket, Key=boosters[0], Body=b"not a booster")

    with pytest.raises(GateRefusedError, match="artifacts") as refused:
        promote(on_stack, model_name, broken, force=True, reason="try anyway")

    assert [c.name for c in refused.value.result.failures] == ["artifacts"]
    assert get_production_version(on_stack, model_name) == v1


@pytest.mark.slow
def test_racing_promotions_on_the_server(
    on_stack: Registry, register: Register, model_name: str, tmp_path: Path
) -> None:
    versions = [register() for _ in range(3)]
    barrier = tmp_path / "barrier"
    barrier.mkdir()

    results = run_contenders(
        [["promote", model_name, v, str(barrier), str(len(versions))] for v in versions],
        cwd=tmp_path,
    )

    print("contenders:", results)
    assert sorted(int(str(r["seq"])) for r in results) == [1, 2, 3]
    assert_consistent(on_stack, model_name, promotions=3)


def test_a_user_without_permission_gets_a_clear_error(
    on_stack: Registry,
    register: Register,
    model_name: str,
    native_stack: NativeStack,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from mlflow.server import get_app_client

    v1, v2 = register(), register()
    promote(on_stack, model_name, v1)  # the admin's promotion creates the audit experiment
    reader, password = native_stack.reader
    monkeypatch.setenv("MLFLOW_TRACKING_USERNAME", reader)
    monkeypatch.setenv("MLFLOW_TRACKING_PASSWORD", password)
    as_reader = connect()

    with pytest.raises(TrackingError) as denied:
        promote(as_reader, model_name, v2)
    assert str(denied.value).startswith(
        f"permission denied: MLflow user '{reader}' may not change registered model '{model_name}'"
    )
    result = CliRunner().invoke(cli, ["promote", model_name, v2, "--yes"])
    assert result.exit_code == 1
    assert "permission denied" in result.stderr
    assert "Traceback" not in result.output
    assert len(result.stderr.strip().splitlines()) == 1
    rolled = CliRunner().invoke(cli, ["rollback", model_name, "--yes"])
    assert rolled.exit_code == 1
    assert "permission denied" in rolled.stderr
    # Reading stays open to the default READ permission.
    listed = CliRunner().invoke(cli, ["history", model_name, "--json"])
    assert listed.exit_code == 0, listed.output
    assert len(json.loads(listed.stdout)) == 1

    # EDIT on the model alone is not enough: promoters also write the history.
    monkeypatch.setenv("MLFLOW_TRACKING_USERNAME", native_stack.admin[0])
    monkeypatch.setenv("MLFLOW_TRACKING_PASSWORD", native_stack.admin[1])
    auth = get_app_client("basic-auth", tracking_uri=native_stack.mlflow_uri)
    auth.grant_user_permission(reader, "registered_model", model_name, "EDIT")
    monkeypatch.setenv("MLFLOW_TRACKING_USERNAME", reader)
    monkeypatch.setenv("MLFLOW_TRACKING_PASSWORD", password)
    with pytest.raises(TrackingError, match="may not write the promotion history"):
        promote(as_reader, model_name, v2)
    assert get_production_version(as_reader, model_name) == v1

    monkeypatch.setenv("MLFLOW_TRACKING_USERNAME", native_stack.admin[0])
    monkeypatch.setenv("MLFLOW_TRACKING_PASSWORD", native_stack.admin[1])
    experiment = on_stack.client.get_experiment_by_name(AUDIT_EXPERIMENT)
    auth.grant_user_permission(reader, "experiment", experiment.experiment_id, "EDIT")
    monkeypatch.setenv("MLFLOW_TRACKING_USERNAME", reader)
    monkeypatch.setenv("MLFLOW_TRACKING_PASSWORD", password)

    event = promote(as_reader, model_name, v2, reason="granted")

    assert event.actor == reader
    assert get_history(on_stack, model_name)[0].actor == reader
    assert_consistent(on_stack, model_name, promotions=2)


def test_cli_status_and_listing_on_the_server(
    on_stack: Registry,
    register: Register,
    model_name: str,
    native_stack: NativeStack,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    v1 = register()
    runner = CliRunner()
    assert runner.invoke(cli, ["promote", model_name, v1, "--yes"]).exit_code == 0

    status = json.loads(runner.invoke(cli, ["status", "--json"]).stdout)
    assert status["tracking_uri"] == native_stack.mlflow_uri
    assert status["reachable"] is True
    assert status["embedded"] is False
    assert status["models"][model_name] == v1
    listing = json.loads(runner.invoke(cli, ["models", "list", "--json"]).stdout)
    mine = next(m for m in listing if m["name"] == model_name)
    assert mine["production_version"] == v1
    assert mine["promoted_by"] == native_stack.admin[0]

    monkeypatch.setenv("MLFLOW_TRACKING_PASSWORD", "wrong")
    refused = runner.invoke(cli, ["status", "--json"])
    assert refused.exit_code == 1
    payload = json.loads(refused.stdout)
    assert payload["reachable"] is False
    assert "refused the credentials" in payload["error"]
    listed = runner.invoke(cli, ["models", "list"])
    assert listed.exit_code == 1
    assert "refused the credentials" in listed.stderr
