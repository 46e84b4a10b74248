"""Migrations: packaged scripts, idempotent upgrade, models in sync, least privilege."""

from __future__ import annotations

from importlib.resources import files
from pathlib import Path

import psycopg2.errors
import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import text
from sqlalchemy.exc import ProgrammingError

from hearteye_platform.db import (
    MigrationError,
    SchemaOutOfDateError,
    check_schema,
    create_db_engine,
    current_revision,
    ensure_schema,
    head_revision,
    upgrade_database,
)
from hearteye_platform.db.models import Base
from tests.identity.conftest import PlatformDb
from tests.identity.pg import PgDatabase, create_database, drop_database


def test_migration_scripts_ship_inside_the_package() -> None:
    migrations = files("hearteye_platform.db") / "migrations"
    assert (migrations / "env.py").is_file()
    assert (migrations / "script.py.mako").is_file()
    assert any(p.name.startswith("0001_") for p in (migrations / "versions").iterdir())
    assert head_revision() == "0004"


def test_sqlite_upgrade_is_idempotent(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'sub' / 'he.db'}"
    engine = create_db_engine(url)
    with pytest.raises(SchemaOutOfDateError, match="ml db upgrade"):
        check_schema(engine)
    first = upgrade_database(url)
    second = upgrade_database(url)
    assert (first.from_revision, first.to_revision, first.applied) == (None, "0004", True)
    assert (second.from_revision, second.applied) == ("0004", False)
    assert current_revision(url) == head_revision()
    check_schema(engine)
    engine.dispose()


def test_models_match_the_migrations(platform_db: PlatformDb) -> None:
    engine = create_db_engine(platform_db.owner_url, pooled=False)
    with engine.connect() as connection:
        context = MigrationContext.configure(connection, opts={"compare_type": True})
        diff = compare_metadata(context, Base.metadata)
    engine.dispose()
    assert diff == []


def _denied(exc: pytest.ExceptionInfo[ProgrammingError]) -> bool:
    return isinstance(exc.value.orig, psycopg2.errors.InsufficientPrivilege)


@pytest.mark.parametrize(
    "statement",
    [
        "UPDATE prediction_audit SET status_code = 500",
        "DELETE FROM prediction_audit",
        "TRUNCATE prediction_audit",
        "DELETE FROM users",
        "DROP TABLE prediction_audit",
        "UPDATE alembic_version SET version_num = 'x'",
    ],
)
def test_app_role_cannot_change_the_audit_trail(pg_database: PgDatabase, statement: str) -> None:
    engine = create_db_engine(pg_database.app_url, pooled=False)
    try:
        with pytest.raises(ProgrammingError) as exc, engine.begin() as connection:
            connection.execute(text(statement))
        assert _denied(exc) or "must be owner" in str(exc.value.orig)
    finally:
        engine.dispose()


def test_app_role_may_insert_and_read_audit_and_manage_users(pg_database: PgDatabase) -> None:
    engine = create_db_engine(pg_database.app_url, pooled=False)
    try:
        with engine.begin() as connection:
            connection.execute(
                text(
                    "INSERT INTO prediction_audit (request_id, occurred_at, route, latency_ms, "
                    "status_code) VALUES ('grant-check', now(), '/api/v1/predict', 1.5, 200)"
                )
            )
            assert (
                connection.execute(
                    text("SELECT count(*) FROM prediction_audit WHERE request_id = 'grant-check'")
                ).scalar_one()
                == 1
            )
            connection.execute(text("SELECT version_num FROM alembic_version")).scalar_one()
            connection.execute(text("UPDATE users SET disabled = false WHERE false"))
        with engine.connect() as connection:
            privileges = set(
                connection.execute(
                    text(
                        "SELECT privilege_type FROM information_schema.role_table_grants "
                        "WHERE grantee = :role AND table_name = 'prediction_audit'"
                    ),
                    {"role": pg_database.app_role},
                ).scalars()
            )
        assert privileges == {"SELECT", "INSERT"}
    finally:
        engine.dispose()


def test_grants_converge_on_every_upgrade(pg_database: PgDatabase) -> None:
    """A wrongly granted UPDATE is revoked by the next upgrade."""
    engine = create_db_engine(pg_database.owner_url, pooled=False)
    with engine.begin() as connection:
        connection.execute(
            text(f"GRANT UPDATE, DELETE ON prediction_audit TO {pg_database.app_role}")
        )
    result = upgrade_database(pg_database.owner_url, app_role=pg_database.app_role)
    assert not result.applied
    app = create_db_engine(pg_database.app_url, pooled=False)
    with pytest.raises(ProgrammingError) as exc, app.begin() as connection:
        connection.execute(text("DELETE FROM prediction_audit"))
    assert _denied(exc)
    engine.dispose()
    app.dispose()


def test_app_role_cannot_migrate_a_fresh_database(pg_admin_url: str) -> None:
    database = create_database(pg_admin_url, prefix="hearteye_fresh")
    try:
        with pytest.raises(MigrationError, match="HEARTEYE_DATABASE_OWNER_URL"):
            upgrade_database(database.app_url)
        assert current_revision(database.owner_url) is None
        with pytest.raises(MigrationError, match="'he_no_such_role' does not exist"):
            upgrade_database(database.owner_url, app_role="he_no_such_role")
        assert current_revision(database.owner_url) is None  # refused before migrating
    finally:
        drop_database(database)


def test_an_empty_postgresql_database_is_not_created_implicitly(pg_admin_url: str) -> None:
    """The runtime (application) role may not create the schema: its owner must."""
    database = create_database(pg_admin_url)
    try:
        engine = create_db_engine(database.owner_url, pooled=False)
        with pytest.raises(SchemaOutOfDateError, match="is empty: run `ml db upgrade` as the"):
            ensure_schema(engine)
        engine.dispose()
        assert current_revision(database.owner_url) is None
    finally:
        drop_database(database)


def test_unreachable_server_is_a_typed_error() -> None:
    from hearteye_platform.db import DatabaseUnavailableError
    from tests.identity.pg import free_port

    url = f"postgresql://nobody@127.0.0.1:{free_port()}/nothing"
    with pytest.raises(DatabaseUnavailableError, match="unavailable"):
        upgrade_database(url)
