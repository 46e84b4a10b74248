"""Least privilege on the native stack's platform database: serving connects as the application
role, which may read and insert audit records but never change or delete them (the schema owner
runs the migrations; docs/identity.md)."""

from __future__ import annotations

import time
from collections.abc import Iterator

import psycopg2
import pytest
from psycopg2 import errors
from psycopg2.extensions import connection

from tests.e2e.helpers import nginx_client
from tests.integration.native_stack import NativeStack

pytestmark = pytest.mark.integration


def _connect(url: str) -> connection:
    return psycopg2.connect(url.replace("postgresql+psycopg2://", "postgresql://", 1))


@pytest.fixture
def owner(stack: NativeStack) -> Iterator[connection]:
    conn = _connect(stack.env["HEARTEYE_DATABASE_OWNER_URL"])
    conn.autocommit = True
    yield conn
    conn.close()


@pytest.fixture
def app(stack: NativeStack) -> Iterator[connection]:
    conn = _connect(stack.env["HEARTEYE_DATABASE_URL"])
    yield conn
    conn.close()


def test_serving_connects_as_the_application_role(stack: NativeStack, owner: connection) -> None:
    with owner.cursor() as cur:
        cur.execute("SELECT rolname, rolsuper FROM pg_roles WHERE rolname IN (current_user, %s)",
                    (_app_role(stack),))  # fmt: skip
        roles = dict(cur.fetchall())
    assert roles == {_app_role(stack): False, _owner_role(stack): False}  # neither a superuser

    deadline = time.monotonic() + 30
    with nginx_client(stack) as http:
        while True:
            http.get("/health")  # its database probe: every instance keeps pooled connections
            with owner.cursor() as cur:
                cur.execute(
                    "SELECT DISTINCT usename FROM pg_stat_activity "
                    "WHERE datname = current_database() AND pid <> pg_backend_pid()"
                )
                users = {row[0] for row in cur.fetchall()}
            if users:
                break
            assert time.monotonic() < deadline, "serving holds no connection to the database"
            time.sleep(0.5)
    assert users == {_app_role(stack)}  # migrations (the owner) ran at start-up and disconnected


@pytest.mark.parametrize(
    "statement",
    [
        "UPDATE prediction_audit SET status_code = status_code",
        "DELETE FROM prediction_audit",
        "TRUNCATE prediction_audit",
        "DELETE FROM users",
        "ALTER TABLE prediction_audit DISABLE TRIGGER ALL",
        "DROP TABLE prediction_audit",
    ],
)
def test_the_application_role_cannot_change_the_audit_trail(
    app: connection, statement: str
) -> None:
    # Rows up to the newest id seen before the statement: serving may still be inserting late
    # records of earlier tests' requests (its audit writer batches them) meanwhile.
    existing = "SELECT count(*) FROM prediction_audit WHERE id <= %s"
    with app.cursor() as cur:
        cur.execute("SELECT count(*), coalesce(max(id), 0) FROM prediction_audit")
        before, newest = cur.fetchone()
        with pytest.raises(errors.InsufficientPrivilege):
            cur.execute(statement)
        app.rollback()
        cur.execute(existing, (newest,))
        assert cur.fetchone()[0] == before
    app.rollback()


def test_the_application_role_may_insert_and_read_audit_records(app: connection) -> None:
    with app.cursor() as cur:
        cur.execute(
            "INSERT INTO prediction_audit (request_id, occurred_at, route, latency_ms, "
            "status_code) VALUES ('least-privilege-probe', now(), '/probe', 0, 200) RETURNING id"
        )
        assert cur.fetchone() is not None
        cur.execute("SELECT route FROM prediction_audit WHERE request_id = 'least-privilege-probe'")
        assert cur.fetchone() == ("/probe",)
    app.rollback()  # leave no probe in the trail


def test_the_application_role_reaches_no_other_database(stack: NativeStack) -> None:
    app_url = stack.env["HEARTEYE_DATABASE_URL"]
    mlflow_db = stack.env["HEARTEYE_STACK_MLFLOW_DATABASE_URL"].rsplit("/", 1)[1]
    with pytest.raises(psycopg2.OperationalError, match="permission denied for database"):
        _connect(f"{app_url.rsplit('/', 1)[0]}/{mlflow_db}").close()


def _app_role(stack: NativeStack) -> str:
    return _user(stack.env["HEARTEYE_DATABASE_URL"])


def _owner_role(stack: NativeStack) -> str:
    return _user(stack.env["HEARTEYE_DATABASE_OWNER_URL"])


def _user(url: str) -> str:
    return url.split("://", 1)[1].split(":", 1)[0]
