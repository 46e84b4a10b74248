"""The native stack's services, each as compose runs it: PostgreSQL databases, SeaweedFS as the S3
server (plus the bucket init), mlflow server with the basic-auth app, and the serving tier.
"""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import sys
from pathlib import Path
from types import ModuleType

from stack_config import REPO_ROOT, SERVING_CONFIG, StackPlan
from stack_process import StackError, http_status, start, wait_until

BIN = Path(sys.executable).parent
# Debian installs nginx in /usr/sbin, which an unprivileged user's PATH often lacks.
SYSTEM_DIRS: tuple[Path, ...] = (Path("/usr/sbin"),)


def find_tool(name: str) -> str | None:
    """An executable from this virtualenv first (weed, gunicorn), then PATH, then /usr/sbin."""
    candidates = [BIN / name, Path(shutil.which(name) or "")]
    candidates += [directory / name for directory in SYSTEM_DIRS]
    for candidate in candidates:
        if candidate.name and candidate.is_file() and os.access(candidate, os.X_OK):
            return str(candidate)
    return None


def tool(name: str) -> str:
    """``find_tool``, or a StackError (the preflight check has normally caught this already)."""
    found = find_tool(name)
    if found is None:
        raise StackError(f"{name} not found (virtualenv, PATH, /usr/sbin)")
    return found


def base_env(plan: StackPlan) -> dict[str, str]:
    """The caller's environment without anything that could point a service elsewhere."""
    drop = ("MLFLOW_", "AWS_", "HEARTEYE_", "PG", "GUNICORN_")
    env = {k: v for k, v in os.environ.items() if not k.startswith(drop)}
    env["PYTHONUNBUFFERED"] = "1"
    return env


# --- PostgreSQL ------------------------------------------------------------------------------


def create_databases(plan: StackPlan) -> None:
    """Two login roles and three fresh databases, as compose's postgres init does.

    ``pg_role`` owns MLflow's store, its auth database and the platform database (and runs the
    platform's migrations); ``app_role`` is the platform's runtime role: it may connect to the
    platform database only, and the migrations give it INSERT/SELECT on the audit trail, nothing
    more (docs/identity.md). Nobody else (PUBLIC) may connect to any of the three.
    """
    import psycopg2
    from psycopg2 import sql

    conn = psycopg2.connect(plan.pg_admin_url)
    try:
        conn.autocommit = True
        with conn.cursor() as cur:
            cur.execute(
                sql.SQL("CREATE ROLE {} LOGIN PASSWORD %s").format(sql.Identifier(plan.pg_role)),
                (plan.pg_password,),
            )
            plan.role_created = True
            plan.save()
            if plan.app_role:
                cur.execute(
                    sql.SQL(
                        "CREATE ROLE {} LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE PASSWORD %s"
                    ).format(sql.Identifier(plan.app_role)),
                    (plan.app_password,),
                )
                plan.app_role_created = True
                plan.save()
            for key, db in plan.databases.items():
                cur.execute(
                    sql.SQL(
                        "CREATE DATABASE {} OWNER {} ENCODING 'UTF8' TEMPLATE template0"
                    ).format(sql.Identifier(db), sql.Identifier(plan.pg_role))
                )
                plan.databases_created.append(db)
                plan.save()
                cur.execute(
                    sql.SQL("REVOKE ALL ON DATABASE {} FROM PUBLIC").format(sql.Identifier(db))
                )
                if key == "platform" and plan.app_role:
                    cur.execute(
                        sql.SQL("GRANT CONNECT ON DATABASE {} TO {}").format(
                            sql.Identifier(db), sql.Identifier(plan.app_role)
                        )
                    )
    finally:
        conn.close()


def drop_databases(plan: StackPlan) -> list[str]:
    """Drop what ``create_databases`` created (only that), force-closing connections."""
    import psycopg2
    from psycopg2 import sql

    dropped = []
    conn = psycopg2.connect(plan.pg_admin_url)
    try:
        conn.autocommit = True
        with conn.cursor() as cur:
            for db in list(plan.databases_created):
                cur.execute(
                    sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(db))
                )
                plan.databases_created.remove(db)
                dropped.append(db)
            if plan.app_role_created:
                cur.execute(sql.SQL("DROP ROLE IF EXISTS {}").format(sql.Identifier(plan.app_role)))
                plan.app_role_created = False
            if plan.role_created:
                cur.execute(sql.SQL("DROP ROLE IF EXISTS {}").format(sql.Identifier(plan.pg_role)))
                plan.role_created = False
    finally:
        conn.close()
    return dropped


# --- SeaweedFS (S3) --------------------------------------------------------------------------


def start_seaweedfs(plan: StackPlan, timeout_s: float) -> None:
    """`weed mini` on 127.0.0.1 only, S3 identities from a config file, then the bucket init."""
    data = plan.state / "data" / "seaweedfs"
    data.mkdir(parents=True, exist_ok=True)
    s3_config = plan.state / "seaweedfs-s3.json"
    identities = {
        "identities": [
            {  # the init identity: creates the bucket (what minio-init's root user does)
                "name": "admin",
                "credentials": [
                    {"accessKey": plan.s3_admin_key, "secretKey": plan.s3_admin_secret}
                ],
                "actions": ["Admin", "Read", "Write", "List", "Tagging"],
            },
            {  # mlflow's identity: read/write/list on its bucket only (minio-init's policy)
                "name": "mlflow",
                "credentials": [
                    {"accessKey": plan.s3_mlflow_key, "secretKey": plan.s3_mlflow_secret}
                ],
                "actions": [f"{a}:{plan.bucket}" for a in ("Read", "Write", "List")],
            },
        ]
    }
    s3_config.write_text(json.dumps(identities, indent=2))
    s3_config.chmod(0o600)
    p = plan.ports
    command = [
        tool("weed"), "mini", f"-dir={data}", "-ip=127.0.0.1", "-ip.bind=127.0.0.1",
        f"-master.port={p['master']}", f"-master.port.grpc={p['master_grpc']}",
        f"-volume.port={p['volume']}", f"-volume.port.grpc={p['volume_grpc']}",
        f"-filer.port={p['filer']}", f"-filer.port.grpc={p['filer_grpc']}",
        f"-s3.port={p['s3']}", f"-s3.port.grpc={p['s3_grpc']}",
        "-s3.port.iceberg=0", "-s3.port.lance=0", "-webdav=false",
        "-admin.ui=false", f"-admin.port={p['seaweed_admin']}",
        f"-admin.port.grpc={p['seaweed_admin_grpc']}",
        f"-filer.localSocket={plan.state / 'run' / 'seaweed-filer.sock'}",
        f"-s3.localSocket={plan.state / 'run' / 'seaweed-s3.sock'}",
        f"-s3.config={s3_config}", "-master.telemetry=false",
    ]  # fmt: skip
    (plan.state / "run").mkdir(parents=True, exist_ok=True)
    record = start(
        "seaweedfs", command, plan.state / "logs" / "seaweedfs.log", base_env(plan), plan.state
    )
    plan.processes.append(record)
    plan.save()
    wait_until(
        "seaweedfs", lambda: http_status(f"{plan.s3_endpoint}/healthz") == 200, record, timeout_s
    )
    wait_until("seaweedfs bucket init", lambda: ensure_bucket(plan), record, timeout_s, 0.5)


def s3_client(plan: StackPlan, key: str, secret: str):
    import boto3
    from botocore.config import Config

    return boto3.client(
        "s3",
        endpoint_url=plan.s3_endpoint,
        aws_access_key_id=key,
        aws_secret_access_key=secret,
        region_name="us-east-1",
        config=Config(s3={"addressing_style": "path"}, retries={"max_attempts": 2}),
    )


def ensure_bucket(plan: StackPlan) -> bool:
    """Idempotent bucket creation: True once the bucket exists and mlflow's identity lists it."""
    from botocore.exceptions import BotoCoreError, ClientError

    admin = s3_client(plan, plan.s3_admin_key, plan.s3_admin_secret)
    try:
        admin.create_bucket(Bucket=plan.bucket)
    except ClientError as exc:
        if exc.response["Error"]["Code"] not in ("BucketAlreadyOwnedByYou", "BucketAlreadyExists"):
            return False
    except BotoCoreError:
        return False
    try:
        s3_client(plan, plan.s3_mlflow_key, plan.s3_mlflow_secret).list_objects_v2(
            Bucket=plan.bucket, MaxKeys=1
        )
    except (ClientError, BotoCoreError):
        return False
    return True


# --- MLflow ----------------------------------------------------------------------------------


def start_mlflow(plan: StackPlan, timeout_s: float) -> None:
    """mlflow server as in compose: PostgreSQL store, proxied S3 artifacts, basic-auth, /mlflow."""
    ini = plan.state / "mlflow" / "basic_auth.ini"
    ini.parent.mkdir(parents=True, exist_ok=True)
    ini.write_text(
        "[mlflow]\n"
        "default_permission = READ\n"
        f"database_uri = {plan.database_url('auth')}\n"
        "authorization_function = mlflow.server.auth:authenticate_request_basic_auth\n"
        # Without the cache every request pays a PBKDF2 hash (~0.8 s here). One worker, so
        # password changes through the API apply at once; only direct SQL edits wait for the TTL.
        "auth_cache_ttl_seconds = 60\n"
    )
    ini.chmod(0o600)
    host = plan.public_host
    allowed = [host, f"{host}:*", "localhost", "localhost:*", "127.0.0.1", "127.0.0.1:*"]
    command = [
        sys.executable, "-m", "mlflow", "server",
        "--serve-artifacts", "--artifacts-destination", f"s3://{plan.bucket}/artifacts",
        "--host", "127.0.0.1", "--port", str(plan.ports["mlflow"]), "--workers", "1",
        "--static-prefix", "/mlflow",
        "--allowed-hosts", ",".join(dict.fromkeys(allowed)),
        "--app-name", "basic-auth",
    ]  # fmt: skip
    env = base_env(plan) | {
        # --backend-store-uri's variable: the password stays out of the process list.
        "MLFLOW_BACKEND_STORE_URI": plan.database_url("mlflow"),
        "MLFLOW_AUTH_CONFIG_PATH": str(ini),
        "MLFLOW_AUTH_ADMIN_USERNAME": plan.admin_username,
        "MLFLOW_AUTH_ADMIN_PASSWORD": plan.admin_password,
        "MLFLOW_FLASK_SERVER_SECRET_KEY": plan.flask_secret_key,
        "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false",
        "MLFLOW_S3_ENDPOINT_URL": plan.s3_endpoint,
        "AWS_ACCESS_KEY_ID": plan.s3_mlflow_key,
        "AWS_SECRET_ACCESS_KEY": plan.s3_mlflow_secret,
        "AWS_DEFAULT_REGION": "us-east-1",
    }
    record = start("mlflow", command, plan.state / "logs" / "mlflow.log", env, plan.state)
    plan.processes.append(record)
    plan.save()
    health = f"{plan.mlflow_direct_uri}/health"
    wait_until("mlflow", lambda: http_status(health) == 200, record, timeout_s)
    for username, password in (
        (plan.reader_username, plan.reader_password),
        (plan.serving_username, plan.serving_password),
    ):
        create_mlflow_user(plan, username, password)


def create_mlflow_user(plan: StackPlan, username: str, password: str) -> None:
    """Create a basic-auth user (default permission READ): compose's mlflow-init does the same."""
    mlflow_users = _load_module("mlflow_users", REPO_ROOT / "infra" / "mlflow" / "mlflow_users.py")
    try:
        mlflow_users.create_user(
            plan.mlflow_direct_uri, (plan.admin_username, plan.admin_password), username, password
        )
    except mlflow_users.UserError as exc:
        raise StackError(f"mlflow: {exc}", plan.state / "logs" / "mlflow.log") from exc


def _load_module(name: str, path: Path) -> ModuleType:
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


# --- Serving ---------------------------------------------------------------------------------

SERVING_APP = "serving.app:create_app()"


def serving_command(port: int) -> list[str]:
    """The serving tier's command, one instance: Gunicorn with the repo's config, own port."""
    return [tool("gunicorn"), "-c", str(SERVING_CONFIG), "--bind", f"127.0.0.1:{port}", SERVING_APP]


def serving_env(plan: StackPlan, instance: int) -> dict[str, str]:
    """What a serving instance reads: MLflow's own variables plus HeartEye's settings."""
    home = plan.state / f"serving-{instance}"
    home.mkdir(parents=True, exist_ok=True)
    return base_env(plan) | {
        "MLFLOW_TRACKING_URI": plan.mlflow_direct_uri,
        "MLFLOW_TRACKING_USERNAME": plan.serving_username,
        "MLFLOW_TRACKING_PASSWORD": plan.serving_password,
        "HEARTEYE_HOME": str(home),
        "HEARTEYE_ENV": "development",
        # Migrations at start-up as the schema owner, everything else as the application role.
        "HEARTEYE_DATABASE_OWNER_URL": plan.database_url("platform"),
        "HEARTEYE_DATABASE_URL": plan.platform_app_url,
        "HEARTEYE_JWT_SECRET": plan.jwt_secret,
        # Uploaded recordings in the S3 bucket, shared by every instance (keys recordings/,
        # analyses/ beside mlflow's artifacts/), with mlflow's identity on that bucket.
        "HEARTEYE_RECORDINGS_S3_BUCKET": plan.bucket,
        "HEARTEYE_RECORDINGS_S3_ENDPOINT": plan.s3_endpoint,
        "AWS_ACCESS_KEY_ID": plan.s3_mlflow_key,
        "AWS_SECRET_ACCESS_KEY": plan.s3_mlflow_secret,
        "AWS_DEFAULT_REGION": "us-east-1",
    }


def start_serving(plan: StackPlan, timeout_s: float) -> None:
    """Every serving instance, then wait for each one's liveness probe (GET /live -> 200)."""
    records = []
    for i, port in enumerate(plan.serving_ports, start=1):
        log = plan.state / "logs" / f"serving-{i}.log"
        record = start(f"serving-{i}", serving_command(port), log, serving_env(plan, i), REPO_ROOT)
        plan.processes.append(record)
        plan.save()
        records.append((record, port))
    for record, port in records:
        url = f"http://127.0.0.1:{port}/live"
        wait_until(record.name, lambda url=url: http_status(url) == 200, record, timeout_s)
