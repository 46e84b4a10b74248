"""The commands docs/operations.md shows, run here without Docker.

In the compose deployment these commands run inside containers (`docker compose exec postgres
pg_dump …`, `docker compose run … mlflow db upgrade …`); the invocations themselves (tool, flags,
URI form) are the same, and this module runs them against the machine's PostgreSQL (or a
throwaway one) and the embedded store, so the documented procedures are known to work:

- a JWT secret generated as the doc says passes the production check;
- `pg_dump --format=custom` + `pg_restore --clean --if-exists`, both as a superuser (compose's
  `POSTGRES_USER`), bring the platform database (users, owner, the application role's grants)
  and an MLflow tracking database (experiments, runs, registered models) back to the state of the
  backup, over a database that changed since;
- `mlflow db upgrade <uri>` runs on a PostgreSQL and a sqlite (embedded) store;
- `ml db upgrade` / `ml db current` afterwards report the schema up to date.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from cli.main import cli
from hearteye.settings import get_settings
from tests.settings import SuiteSettings
from tests.identity.pg import (
    DEFAULT_ADMIN_URL,
    PgDatabase,
    ThrowawayPostgres,
    create_database,
    drop_database,
    pg_bin,
    reachable,
)

PASSWORD = "correct horse battery staple"
MLFLOW = str(Path(sys.executable).with_name("mlflow"))


def run(*args: str, stdin: str | None = None) -> str:
    result = subprocess.run(args, input=stdin, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, f"{' '.join(args[:2])} failed:\n{result.stderr}"
    return result.stdout


def libpq(url: str) -> str:
    """A SQLAlchemy URL as libpq (pg_dump, pg_restore) reads it."""
    return url.replace("postgresql+psycopg2://", "postgresql://", 1)


def as_superuser(database: PgDatabase) -> str:
    """The database as the server's superuser, like `pg_dump -U "$POSTGRES_USER"` in compose."""
    from sqlalchemy.engine import make_url

    url = make_url(database.admin_url).set(database=database.name)
    return libpq(url.render_as_string(hide_password=False))


def table_owner(database: PgDatabase, table: str) -> str:
    from sqlalchemy import create_engine, text

    engine = create_engine(database.owner_url)
    try:
        with engine.connect() as connection:
            query = text("SELECT tableowner FROM pg_tables WHERE tablename = :t")
            return str(connection.execute(query, {"t": table}).scalar_one())
    finally:
        engine.dispose()


def ml(*args: str, stdin: str | None = None) -> Result:
    get_settings.cache_clear()
    result = CliRunner().invoke(cli, list(args), input=stdin)
    assert result.exit_code == 0, result.output
    return result


def test_generated_jwt_secret_passes_the_production_check(tmp_path: Path) -> None:
    from hearteye_platform.auth_tokens import resolve_jwt_secret

    secret = run(sys.executable, "-c", "import secrets; print(secrets.token_hex(32))").strip()
    assert re.fullmatch(r"[0-9a-f]{64}", secret)
    assert resolve_jwt_secret(secret, env="production", home=tmp_path) == secret


@pytest.mark.slow
def test_mlflow_db_upgrade_on_the_embedded_store(tmp_path: Path) -> None:
    from mlflow import MlflowClient

    uri = f"sqlite:///{tmp_path / 'mlflow' / 'mlflow.db'}"
    (tmp_path / "mlflow").mkdir()
    MlflowClient(tracking_uri=uri).create_experiment(
        "kept", artifact_location=(tmp_path / "artifacts").as_uri()
    )
    run(MLFLOW, "db", "upgrade", uri)
    assert MlflowClient(tracking_uri=uri).get_experiment_by_name("kept") is not None


@pytest.fixture(scope="module")
def pg_admin_url() -> Iterator[str]:
    """A superuser URL: HEARTEYE_TEST_POSTGRES_URL, else the machine's server, else our own."""
    url = SuiteSettings().postgres_url
    if reachable(url):
        yield url
        return
    if pg_bin("initdb") is None:
        pytest.fail(f"no PostgreSQL at {url} and no initdb to start one")
    with ThrowawayPostgres() as server:
        yield server.admin_url


@pytest.fixture
def pg_database(pg_admin_url: str) -> Iterator[PgDatabase]:
    database = create_database(pg_admin_url, prefix="hearteye_ops")
    try:
        yield database
    finally:
        drop_database(database)


def pg_tool(name: str) -> str:
    path = pg_bin(name)
    assert path is not None, f"{name} not found: install the PostgreSQL client package"
    return path


@pytest.mark.integration
def test_backup_and_restore_the_platform_database(
    pg_database: PgDatabase, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HEARTEYE_DATABASE_URL", pg_database.app_url)
    monkeypatch.setenv("HEARTEYE_DATABASE_OWNER_URL", pg_database.owner_url)
    monkeypatch.setenv("HEARTEYE_DATABASE_APP_ROLE", pg_database.app_role)
    ml("db", "upgrade")
    ml("users", "add", "alice", "--role", "admin", "--password-stdin", stdin=PASSWORD + "\n")

    dump = tmp_path / "hearteye.dump"
    superuser = as_superuser(pg_database)
    run(pg_tool("pg_dump"), "--format=custom", f"--dbname={superuser}", f"--file={dump}")
    ml("users", "add", "bob", "--role", "clinician", "--password-stdin", stdin=PASSWORD + "\n")
    run(pg_tool("pg_restore"), "--clean", "--if-exists", f"--dbname={superuser}", str(dump))

    # Read as the application role: its grants came back with the dump.
    users = json.loads(ml("users", "list", "--json").stdout)
    assert [u["username"] for u in users] == ["alice"]
    # The tables still belong to the schema owner, who can migrate and re-grant.
    assert table_owner(pg_database, "users") == pg_database.owner_role
    assert json.loads(ml("db", "upgrade", "--json").stdout)["applied"] is False
    assert json.loads(ml("db", "current", "--json").stdout)["up_to_date"] is True


@pytest.mark.integration
def test_backup_restore_and_upgrade_an_mlflow_database(
    pg_database: PgDatabase, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from mlflow import MlflowClient

    monkeypatch.chdir(tmp_path)  # MLflow's default artifact root for a SQL store is ./mlruns
    uri = pg_database.owner_url
    client = MlflowClient(tracking_uri=uri, registry_uri=uri)
    experiment = client.create_experiment(
        "hearteye-training", artifact_location=(tmp_path / "artifacts").as_uri()
    )
    run_id = client.create_run(experiment).info.run_id
    client.log_param(run_id, "seed", "0")
    client.set_terminated(run_id)
    client.create_registered_model("ecg-xgboost", tags={"hearteye.production": "{}"})

    dump = tmp_path / "mlflow.dump"
    superuser = as_superuser(pg_database)
    run(pg_tool("pg_dump"), "--format=custom", f"--dbname={superuser}", f"--file={dump}")
    client.delete_registered_model("ecg-xgboost")
    client.delete_run(run_id)
    run(pg_tool("pg_restore"), "--clean", "--if-exists", f"--dbname={superuser}", str(dump))
    assert table_owner(pg_database, "registered_models") == pg_database.owner_role
    run(MLFLOW, "db", "upgrade", uri)

    client = MlflowClient(tracking_uri=uri, registry_uri=uri)
    assert client.get_registered_model("ecg-xgboost").tags == {"hearteye.production": "{}"}
    restored = client.get_run(run_id)
    assert restored.info.lifecycle_stage == "active"
    assert restored.data.params == {"seed": "0"}


def test_promote_history_and_rollback_as_documented(
    isolated_state: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The promotion section's commands, in a coherent order, on the embedded store."""
    import mlflow

    from hearteye.registry import connect, get_history, get_production_version
    from hearteye.tracking import ensure_experiment
    from tests.registry.fakes import GOOD_METRICS, log_tiny_beat_model, version_tags

    monkeypatch.chdir(isolated_state)
    registry = connect(probe=False)
    experiment_id = ensure_experiment(registry.client, registry.target, "operations-doc")
    with mlflow.start_run(experiment_id=experiment_id):
        model_uri = log_tiny_beat_model()
    for _ in range(3):
        version = mlflow.register_model(model_uri, "ecg-xgboost").version
        for key, value in version_tags(GOOD_METRICS).items():
            registry.client.set_model_version_tag("ecg-xgboost", str(version), key, value)

    assert json.loads(ml("status", "--json").stdout)["reachable"] is True
    assert "ecg-xgboost" in ml("models", "list").stdout
    assert "inter-patient-DS1-DS2" in ml("models", "show", "ecg-xgboost", "2").stdout
    ml("promote", "ecg-xgboost", "1", "--yes")
    ml("promote", "ecg-xgboost", "2", "--reason", "retrained on the full DS1", stdin="y\n")
    ml("promote", "ecg-xgboost", "3", "--yes")
    assert "promotion history" in ml("history", "ecg-xgboost").stdout
    ml("rollback", "ecg-xgboost", "--reason", "S sensitivity drop reported", stdin="y\n")
    assert get_production_version(registry, "ecg-xgboost") == "2"
    ml("rollback", "ecg-xgboost", "--to", "1", "--yes")
    assert get_production_version(registry, "ecg-xgboost") == "1"

    history = json.loads(ml("history", "ecg-xgboost", "--json").stdout)
    assert [(e["action"], e["from_version"], e["to_version"]) for e in history] == [
        ("rollback", "2", "1"),
        ("rollback", "3", "2"),
        ("promote", "2", "3"),
        ("promote", "1", "2"),
        ("promote", None, "1"),
    ]
    reasons = [event.reason for event in get_history(registry, "ecg-xgboost")]
    assert reasons[1] == "S sensitivity drop reported"
    assert reasons[3] == "retrained on the full DS1"


def _free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def auth_server(tmp_path: Path) -> Iterator[str]:
    """A basic-auth `mlflow server` on sqlite, configured like the stack's; its URL."""
    import time

    import httpx

    (tmp_path / "basic_auth.ini").write_text(
        "[mlflow]\n"
        "default_permission = READ\n"
        f"database_uri = sqlite:///{tmp_path / 'auth.db'}\n"
        "authorization_function = mlflow.server.auth:authenticate_request_basic_auth\n"
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("MLFLOW_")}
    env.update(
        MLFLOW_AUTH_CONFIG_PATH=str(tmp_path / "basic_auth.ini"),
        MLFLOW_AUTH_ADMIN_USERNAME="admin",
        MLFLOW_AUTH_ADMIN_PASSWORD="first-admin-password",
        MLFLOW_FLASK_SERVER_SECRET_KEY="a-test-secret-key-for-sessions",
        MLFLOW_SERVER_ENABLE_JOB_EXECUTION="false",
    )
    port = _free_port()
    log = (tmp_path / "mlflow.log").open("w")
    command = [MLFLOW, "server", "--app-name", "basic-auth", "--workers", "1"]
    command += ["--host", "127.0.0.1", "--port", str(port)]
    command += ["--backend-store-uri", f"sqlite:///{tmp_path / 'mlflow.db'}"]
    command += ["--default-artifact-root", (tmp_path / "artifacts").as_uri()]
    server = subprocess.Popen(
        command,
        env=env,
        cwd=tmp_path,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 90
        while True:
            try:
                if httpx.get(f"{url}/health", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if server.poll() is not None or time.monotonic() > deadline:
                pytest.fail(
                    f"mlflow server did not start:\n{(tmp_path / 'mlflow.log').read_text()[-3000:]}"
                )
            time.sleep(0.5)
        yield url
    finally:
        server.terminate()
        try:
            server.wait(timeout=20)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()
        log.close()


@pytest.mark.integration
@pytest.mark.slow
def test_mlflow_user_admin_and_password_rotation(
    auth_server: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """First start (a user with EDIT on a model and on the promotions experiment) and rotation."""
    import httpx
    from mlflow import MlflowClient
    from mlflow.server import get_app_client

    def answers(user: str, password: str) -> int:
        url = f"{auth_server}/api/2.0/mlflow/experiments/search"
        return httpx.get(url, params={"max_results": 1}, auth=(user, password)).status_code

    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.setenv("MLFLOW_TRACKING_USERNAME", "admin")
    monkeypatch.setenv("MLFLOW_TRACKING_PASSWORD", "first-admin-password")
    admin = MlflowClient(auth_server, registry_uri=auth_server)
    admin.create_registered_model("ecg-xgboost")
    admin.create_experiment("hearteye-promotions")
    auth = get_app_client("basic-auth", tracking_uri=auth_server)
    auth.create_user("serving", "first-serving-password")  # what mlflow-init does

    # First start, step 4.
    auth.create_user("carol", "a long passphrase")
    auth.grant_user_permission("carol", "registered_model", "ecg-xgboost", "EDIT")
    promotions = MlflowClient(auth_server).get_experiment_by_name("hearteye-promotions")
    auth.grant_user_permission("carol", "experiment", promotions.experiment_id, "EDIT")
    monkeypatch.setenv("MLFLOW_TRACKING_USERNAME", "carol")
    monkeypatch.setenv("MLFLOW_TRACKING_PASSWORD", "a long passphrase")
    as_carol = MlflowClient(auth_server, registry_uri=auth_server)
    as_carol.update_registered_model("ecg-xgboost", description="carol may")
    as_carol.create_run(promotions.experiment_id)

    # Rotation, as the secrets section shows it.
    monkeypatch.setenv("MLFLOW_TRACKING_USERNAME", "admin")
    monkeypatch.setenv("MLFLOW_TRACKING_PASSWORD", "first-admin-password")
    auth.update_user_password(
        "admin", "second-admin-password", current_password="first-admin-password"
    )
    monkeypatch.setenv("MLFLOW_TRACKING_PASSWORD", "second-admin-password")
    auth.update_user_password("serving", "second-serving-password")

    assert answers("admin", "first-admin-password") == 401
    assert answers("admin", "second-admin-password") == 200
    assert answers("serving", "first-serving-password") == 401
    assert answers("serving", "second-serving-password") == 200
