"""`ml backup` and `ml restore` on a real stack of its own: PostgreSQL, SeaweedFS, a real
`mlflow server` behind nginx (the native stack launcher, serving tier off) and the real serving app
in-process (lifespan and all) on the stack's registry, platform database and bucket.

A real model is registered twice, promoted, rolled back and promoted again; users are added, a
recording uploaded and analysed, predictions made (audited). Then: back up to a tar; wipe all
of it (the four databases dropped and recreated empty, the bucket emptied); a tampered copy and a
partial copy are refused with nothing written; the backup is restored; everything reads back the
same, and a fresh serving app loads the model from the restored stack and answers the same
probabilities. The stack is its own because the test wipes it (the session's stack is shared).
"""

from __future__ import annotations

import shutil
import socket
import tarfile
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg2
import pytest
from click.testing import CliRunner
from psycopg2 import sql

from cli.main import cli
from hearteye.settings import get_settings
from tests.registry.fakes import GOOD_METRICS, log_tiny_beat_model, synthetic_strip, version_tags
from tests.serving.conftest import TestClient  # imported with Starlette's httpx warning silenced

pytestmark = [pytest.mark.integration, pytest.mark.postgres, pytest.mark.nginx]

MODEL = "ecg-xgboost"
PASSWORD = "backup-test-password-1"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture(scope="module")
def plan() -> Iterator[Any]:
    """A native stack without its serving tier, for this module alone."""
    import hearteye_stack

    state = Path(tempfile.mkdtemp(prefix="hearteye-backup-stack-"))
    settings = hearteye_stack.settings_from_env(
        state_dir=state, http_port=_free_port(), serving="off"
    )
    try:
        started = hearteye_stack.up(settings, quiet=True)
    except hearteye_stack.StackError as exc:
        shutil.rmtree(state, ignore_errors=True)
        pytest.fail(f"native stack failed to start: {exc}")
    try:
        yield started
    finally:
        hearteye_stack.down(state, quiet=True)
        shutil.rmtree(state, ignore_errors=True)


@pytest.fixture
def on_stack(plan: Any, isolated_state: Path, monkeypatch: pytest.MonkeyPatch) -> Any:
    """The environment an operator's shell has for the stack (docs/operations.md)."""
    env = {
        "MLFLOW_TRACKING_URI": f"{plan.url}/mlflow",
        "MLFLOW_TRACKING_USERNAME": plan.admin_username,
        "MLFLOW_TRACKING_PASSWORD": plan.admin_password,
        "HEARTEYE_DATABASE_URL": plan.platform_app_url,
        "HEARTEYE_DATABASE_OWNER_URL": plan.database_url("platform"),
        "MLFLOW_BACKEND_STORE_URI": plan.database_url("mlflow"),
        "HEARTEYE_MLFLOW_AUTH_DATABASE_URI": plan.database_url("auth"),
        "HEARTEYE_S3_ENDPOINT": plan.s3_endpoint,
        "HEARTEYE_S3_BUCKET": plan.bucket,
        "HEARTEYE_S3_ACCESS_KEY": plan.s3_admin_key,
        "HEARTEYE_S3_SECRET_KEY": plan.s3_admin_secret,
        # The serving app's recordings (boto3's own variables, as serving reads them).
        "AWS_ACCESS_KEY_ID": plan.s3_admin_key,
        "AWS_SECRET_ACCESS_KEY": plan.s3_admin_secret,
        "AWS_DEFAULT_REGION": "us-east-1",
    }
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("MLFLOW_REGISTRY_URI", raising=False)
    monkeypatch.delenv("HEARTEYE_ENV", raising=False)
    get_settings.cache_clear()
    return plan


def _serving(plan: Any, home: Path) -> TestClient:
    from serving.app import create_app
    from serving.settings import ServingSettings

    settings = ServingSettings(
        home=home,
        models=[MODEL],
        default_model=MODEL,
        jwt_secret="backup-integration-secret-" + "x" * 40,
        recordings_s3_bucket=plan.bucket,
        recordings_s3_endpoint=plan.s3_endpoint,
    )
    return TestClient(create_app(settings))


def _token(client: TestClient, username: str) -> dict[str, str]:
    response = client.post("/api/v1/auth/token", data={"username": username, "password": PASSWORD})
    assert response.status_code == 200, response.text
    return {"Authorization": f"Bearer {response.json()['access_token']}"}


def _predict(client: TestClient, headers: dict[str, str]) -> dict[str, Any]:
    response = client.post("/api/v1/predict", json=synthetic_strip(), headers=headers)
    assert response.status_code == 200, response.text
    return dict(response.json())


def _wait_analysed(client: TestClient, recording: str, headers: dict[str, str]) -> list[Any]:
    deadline = time.monotonic() + 120
    while True:
        response = client.get(f"/api/v1/recordings/{recording}/analyses", headers=headers)
        assert response.status_code == 200, response.text
        items = response.json()["items"]
        if items and all(item["status"] in ("done", "failed") for item in items):
            return list(items)
        assert time.monotonic() < deadline, items
        time.sleep(0.5)


def _registry_state() -> dict[str, Any]:
    from hearteye.registry import connect, get_history

    get_settings.cache_clear()
    registry = connect()
    client = registry.client
    versions = client.search_model_versions(f"name='{MODEL}'")
    model = client.get_registered_model(MODEL)
    return {
        "versions": sorted(
            (v.version, v.source, v.run_id, v.status, sorted(v.tags.items())) for v in versions
        ),
        "aliases": dict(model.aliases),
        "history": [event.to_dict() for event in get_history(registry, MODEL)],
    }


def _platform_state(client: TestClient, admin: dict[str, str]) -> dict[str, Any]:
    audit = client.get("/api/v1/audit", params={"limit": 1000}, headers=admin)
    assert audit.status_code == 200, audit.text
    recordings = client.get("/api/v1/recordings", headers=admin)
    assert recordings.status_code == 200, recordings.text
    from hearteye_platform.identity import UserStore

    users = UserStore(client.app.state.runtime.sessions).list_users()  # type: ignore[attr-defined]
    return {"audit": audit.json(), "users": users, "recordings": recordings.json()}


def _wipe(plan: Any) -> None:
    """What a lost server leaves: mlflow stopped, the databases dropped and recreated empty
    (the stack's own init script: roles and CONNECT rights as on a new server), the bucket empty."""
    import stack_services
    import stack_supervisor
    from stack_process import stop_all

    # The supervisor first: it would restart the stopped mlflow (outside this test's plan).
    stack_supervisor.stop_supervisor(plan)
    mlflow = [p for p in plan.processes if p.name in ("mlflow", "mlflow-metrics")]
    stop_all(mlflow)
    plan.processes = [p for p in plan.processes if p not in mlflow]
    plan.save()
    conn = psycopg2.connect(plan.pg_admin_url)
    try:
        conn.autocommit = True
        with conn.cursor() as cur:
            for db in plan.databases.values():
                cur.execute(sql.SQL("DROP DATABASE {} WITH (FORCE)").format(sql.Identifier(db)))
    finally:
        conn.close()
    stack_services.create_databases(plan)
    s3 = stack_services.s3_client(plan, plan.s3_admin_key, plan.s3_admin_secret)
    keys = [o["Key"] for o in s3.list_objects_v2(Bucket=plan.bucket).get("Contents", [])]
    if keys:
        s3.delete_objects(Bucket=plan.bucket, Delete={"Objects": [{"Key": k} for k in keys]})
    assert s3.list_objects_v2(Bucket=plan.bucket).get("KeyCount") == 0


def _relations(plan: Any) -> int:
    from hearteye_platform.backup.postgres import relation_count

    return sum(relation_count(plan.database_url(key), key) for key in plan.databases)


def _run(*args: str) -> Any:
    result = CliRunner().invoke(cli, list(args))
    return result


def test_backup_wipe_restore_gives_back_the_same_stack(
    on_stack: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import mlflow
    from argon2 import PasswordHasher

    from hearteye.registry import connect, promote, rollback
    from hearteye.tracking import ensure_experiment, fluent_api_on
    from hearteye_platform.db import (
        create_db_engine,
        create_session_factory,
        current_revision,
        head_revision,
        upgrade_database,
    )
    from hearteye_platform.identity import UserStore

    plan = on_stack
    # -- a stack with history ------------------------------------------------------------------
    upgrade_database(plan.database_url("platform"), app_role=plan.app_role)  # serving's start-up
    registry = connect()
    experiment = ensure_experiment(registry.client, registry.target, "backup-it")
    with fluent_api_on(registry.target):
        with mlflow.start_run(experiment_id=experiment):
            uri = log_tiny_beat_model()
        versions = [str(mlflow.register_model(uri, MODEL).version) for _ in range(2)]
    for version in versions:
        for key, value in version_tags(GOOD_METRICS).items():
            registry.client.set_model_version_tag(MODEL, version, key, value)
    promote(registry, MODEL, versions[0], reason="first")
    promote(registry, MODEL, versions[1], reason="second")
    rollback(registry, MODEL, reason="back")
    promote(registry, MODEL, versions[1], reason="again")

    engine = create_db_engine(plan.platform_app_url, pooled=False)
    users = UserStore(create_session_factory(engine), hasher=PasswordHasher(time_cost=1))
    users.add("backup-clin", "clinician", PASSWORD)
    users.add("backup-admin", "admin", PASSWORD)
    engine.dispose()

    with _serving(plan, tmp_path / "serving-before") as client:
        clinician, admin = _token(client, "backup-clin"), _token(client, "backup-admin")
        before_answer = _predict(client, clinician)
        _predict(client, admin)
        strip = synthetic_strip()
        csv = "mlii\n" + "\n".join(str(v) for v in strip["signal"]) + "\n"
        upload = client.post(
            "/api/v1/recordings",
            files={"files": ("strip.csv", csv.encode(), "text/csv")},
            data={"fs": "360"},
            headers=clinician,
        )
        assert upload.status_code == 201, upload.text
        recording = upload.json()["id"]
        queued = client.post(f"/api/v1/recordings/{recording}/analyses", json={}, headers=clinician)
        assert queued.status_code == 202, queued.text
        analyses = _wait_analysed(client, recording, clinician)
        assert client.app.state.runtime.audit.flush(10.0)  # type: ignore[attr-defined]
        platform_before = _platform_state(client, admin)
    registry_before = _registry_state()
    assert registry_before["aliases"] == {"production": versions[1]}
    assert [e["action"] for e in registry_before["history"]] == [
        "promote", "rollback", "promote", "promote",
    ]  # fmt: skip
    assert platform_before["audit"]["count"] >= 2
    assert analyses[0]["status"] == "done", analyses

    # -- back up ---------------------------------------------------------------------------------
    backup = tmp_path / "stack-backup.tar"
    result = _run("backup", str(backup), "--json")
    assert result.exit_code == 0, result.output
    assert backup.is_file()
    with tarfile.open(backup) as tar:
        names = tar.getnames()
    assert {"manifest.json", "platform.dump", "mlflow.dump", "mlflow-auth.dump"} <= set(names)

    # -- wipe everything -----------------------------------------------------------------------
    _wipe(plan)
    assert _relations(plan) == 0

    # -- a tampered and a partial backup are refused; nothing is written --------------------------
    extracted = tmp_path / "extracted"
    with tarfile.open(backup) as tar:
        tar.extractall(extracted, filter="data")
    tampered = tmp_path / "tampered"
    shutil.copytree(extracted, tampered)
    dump = tampered / "mlflow.dump"
    dump.write_bytes(dump.read_bytes()[:-1] + bytes([dump.read_bytes()[-1] ^ 1]))
    refused = _run("restore", str(tampered))
    assert refused.exit_code == 1
    assert "part mlflow.dump does not match its sha256" in refused.output
    partial = tmp_path / "partial"
    shutil.copytree(extracted, partial)
    (partial / "manifest.json").unlink()
    refused = _run("restore", str(partial))
    assert refused.exit_code == 1
    assert "manifest.json is missing" in refused.output
    assert _relations(plan) == 0
    s3 = plan_s3(plan)
    assert s3.list_objects_v2(Bucket=plan.bucket).get("KeyCount") == 0

    # -- restore -------------------------------------------------------------------------------
    result = _run("restore", str(backup), "--json")
    assert result.exit_code == 0, result.output
    # The platform schema is at head and the application role has its rights back (before any
    # serving start-up could re-grant them).
    assert current_revision(plan.platform_app_url) == head_revision()
    engine = create_db_engine(plan.platform_app_url, pooled=False)
    restored_users = UserStore(create_session_factory(engine)).list_users()
    engine.dispose()
    assert [u.username for u in restored_users] == ["backup-admin", "backup-clin"]
    import stack_services

    stack_services.start_mlflow(plan, 120.0)  # the operator starts mlflow again

    assert _registry_state() == registry_before
    with _serving(plan, tmp_path / "serving-after") as client:  # a fresh cache: loads from S3
        admin = _token(client, "backup-admin")
        platform_after = _platform_state(client, admin)
        assert platform_after == platform_before
        signal = client.get(f"/api/v1/recordings/{recording}/signal", headers=admin)
        assert signal.status_code == 200, signal.text
        after_answer = _predict(client, _token(client, "backup-clin"))
    assert after_answer["model"] == before_answer["model"]
    assert before_answer["beats"]
    assert after_answer["beats"] == before_answer["beats"]  # same labels, same probabilities

    # A second restore over the restored stack is refused without --force.
    again = _run("restore", str(backup))
    assert again.exit_code == 1
    assert "refusing to restore over data" in again.output
    # --force wipes the databases and the bucket first, then restores the same state again (the
    # prediction made since is gone from the audit trail: it was not in the backup).
    forced = _run("restore", str(backup), "--force", "--yes")
    assert forced.exit_code == 0, forced.output
    assert _registry_state() == registry_before
    with _serving(plan, tmp_path / "serving-forced") as client:
        assert _platform_state(client, _token(client, "backup-admin")) == platform_before


def plan_s3(plan: Any) -> Any:
    import stack_services

    return stack_services.s3_client(plan, plan.s3_admin_key, plan.s3_admin_secret)
