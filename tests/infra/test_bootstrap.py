"""One bootstrap for both forms of the stack: the native stack creates its roles and databases
with compose's PostgreSQL init script (infra/postgres/init-databases.sh) and starts mlflow server
through the mlflow image's entrypoint (infra/mlflow/entrypoint.sh, which writes the basic-auth
config), instead of copies of them."""

from __future__ import annotations

import inspect
import os
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg2
import pytest
import stack_services
from stack_config import StackPlan, StackSettings, make_plan

from tests.infra.conftest import REPO_ROOT
from tests.settings import SuiteSettings

pytestmark = pytest.mark.postgres


def test_the_native_stack_has_no_copy_of_either_bootstrap() -> None:
    source = inspect.getsource(stack_services)
    for own_copy in ("CREATE DATABASE", "CREATE ROLE", "GRANT CONNECT", "default_permission"):
        assert own_copy not in source, own_copy
    assert stack_services.POSTGRES_INIT == REPO_ROOT / "infra/postgres/init-databases.sh"
    assert stack_services.MLFLOW_ENTRYPOINT == REPO_ROOT / "infra/mlflow/entrypoint.sh"
    compose = (REPO_ROOT / "infra" / "compose.yaml").read_text()
    assert "./postgres/init-databases.sh:/docker-entrypoint-initdb.d/" in compose
    dockerfile = (REPO_ROOT / "infra" / "docker" / "mlflow.Dockerfile").read_text()
    assert 'ENTRYPOINT ["/opt/hearteye/entrypoint.sh"]' in dockerfile


@pytest.fixture
def plan() -> Iterator[StackPlan]:
    admin = SuiteSettings().postgres_url.replace("postgresql+psycopg2://", "postgresql://")
    state = Path(tempfile.mkdtemp(prefix="hearteye-bootstrap-"))
    made = make_plan(StackSettings(state_dir=state, pg_admin_url=admin))
    made.save()
    try:
        yield made
    finally:
        stack_services.drop_databases(made)


def _query(url: str, sql: str, params: tuple[str, ...] = ()) -> list[tuple[Any, ...]]:
    conn = psycopg2.connect(url)
    try:
        with conn.cursor() as cur:
            cur.execute(sql, params)
            return cur.fetchall()
    finally:
        conn.close()


def test_the_init_script_creates_the_native_roles_and_databases(plan: StackPlan) -> None:
    stack_services.create_databases(plan)
    stack_services.create_databases(plan)  # idempotent: a second run changes nothing
    rows = _query(
        plan.pg_admin_url,
        "SELECT datname, pg_get_userbyid(datdba), pg_encoding_to_char(encoding), "
        "has_database_privilege('public', oid, 'CONNECT'), "
        "has_database_privilege(%s, oid, 'CONNECT') "
        "FROM pg_database WHERE datname LIKE %s ORDER BY 1",
        (plan.app_role, f"{plan.name}%"),
    )
    by_name = {row[0]: row[1:] for row in rows}
    assert set(by_name) == set(plan.databases.values())
    for key, db in plan.databases.items():
        owner, encoding, public_connect, app_connect = by_name[db]
        assert (owner, encoding, public_connect) == (plan.pg_role, "UTF8", False), key
        assert app_connect == (key == "platform"), key
    roles = _query(
        plan.pg_admin_url,
        "SELECT rolname, rolsuper, rolcreatedb, rolcreaterole FROM pg_roles "
        "WHERE rolname IN (%s, %s)",
        (plan.pg_role, plan.app_role),
    )
    assert sorted(roles) == [
        (plan.pg_role, False, False, False),
        (plan.app_role, False, False, False),
    ]
    # Both roles log in with the passwords the plan holds (what serving and mlflow use).
    assert _query(plan.platform_app_url.replace("+psycopg2", ""), "SELECT 1") == [(1,)]
    assert _query(plan.database_url("mlflow", driver="postgresql"), "SELECT 1") == [(1,)]
    assert stack_services.drop_databases(plan)
    left = _query(
        plan.pg_admin_url, "SELECT count(*) FROM pg_roles WHERE rolname LIKE %s", (f"{plan.name}%",)
    )
    assert left == [(0,)]


def test_the_mlflow_entrypoint_writes_the_auth_config_for_both(tmp_path: Path) -> None:
    ini = tmp_path / "mlflow" / "basic_auth.ini"
    uri = "postgresql+psycopg2://owner:s3cr3t-Pa55word@127.0.0.1:5432/auth"
    result = subprocess.run(
        ["/bin/sh", str(stack_services.MLFLOW_ENTRYPOINT), "--help"],  # then `mlflow server --help`
        env={
            "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
            "HOME": str(tmp_path),
            "MLFLOW_AUTH_CONFIG_PATH": str(ini),
            "HEARTEYE_MLFLOW_AUTH_DATABASE_URI": uri,
        },
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert "--app-name" in result.stdout
    text = ini.read_text()
    assert f"database_uri = {uri}\n" in text
    assert "default_permission = READ\n" in text
    assert "auth_cache_ttl_seconds = 60\n" in text
    assert ini.stat().st_mode & 0o777 == 0o600
