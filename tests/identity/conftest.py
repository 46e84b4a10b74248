"""Fixtures for identity and audit tests: one platform database per test, sqlite and PostgreSQL."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from argon2 import PasswordHasher
from sqlalchemy import text
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session, sessionmaker

from hearteye_platform.db import create_db_engine, create_session_factory, upgrade_database
from tests.identity.pg import (
    PgDatabase,
    ThrowawayPostgres,
    admin_execute,
    create_database,
    drop_database,
    pg_bin,
    reachable,
)
from tests.settings import SuiteSettings


@pytest.fixture(autouse=True)
def _no_database_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """A developer's HEARTEYE_DATABASE_* must not leak into tests."""
    for name in ("URL", "OWNER_URL", "APP_ROLE", "POOL_SIZE", "MAX_OVERFLOW"):
        monkeypatch.delenv(f"HEARTEYE_DATABASE_{name}", raising=False)
    monkeypatch.delenv("HEARTEYE_ENV", raising=False)


@pytest.fixture(scope="session")
def pg_admin_url() -> Iterator[str]:
    """A superuser URL: HEARTEYE_TEST_POSTGRES_URL, else the machine's server, else our own."""
    url = SuiteSettings().postgres_url
    if reachable(url):
        yield url
        return
    if pg_bin("initdb") is None:
        pytest.skip(f"no PostgreSQL at {url} and no initdb to start one")
    with ThrowawayPostgres() as server:
        yield server.admin_url


@pytest.fixture(scope="session")
def pg_database(pg_admin_url: str) -> Iterator[PgDatabase]:
    """A database for this session, migrated as its owner, the app role granted; dropped after."""
    database = create_database(pg_admin_url)
    try:
        upgrade_database(database.owner_url, app_role=database.app_role)
        yield database
    finally:
        drop_database(database)


@dataclass
class PlatformDb:
    """The platform database a test uses, as the application role."""

    kind: str
    url: str
    owner_url: str
    engine: Engine
    sessions: sessionmaker[Session]
    pg: PgDatabase | None = None


@pytest.fixture(params=["sqlite", "postgresql"])
def platform_db(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[PlatformDb]:
    """An empty, migrated platform database: a sqlite file, or the session's PostgreSQL database
    (truncated) reached as the least-privileged application role."""
    pg: PgDatabase | None = None
    if request.param == "sqlite":
        url = owner_url = f"sqlite:///{tmp_path / 'hearteye.db'}"
        upgrade_database(url)
    else:
        pg = request.getfixturevalue("pg_database")
        url, owner_url = pg.app_url, pg.owner_url
        admin_execute(
            owner_url, "TRUNCATE users, prediction_audit, signin_throttle RESTART IDENTITY"
        )
    engine = create_db_engine(url, pool_size=2, max_overflow=2)
    try:
        yield PlatformDb(request.param, url, owner_url, engine, create_session_factory(engine), pg)
    finally:
        engine.dispose()


@pytest.fixture
def fast_hasher() -> PasswordHasher:
    """argon2id with tiny parameters: tests check behaviour, not cost."""
    return PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1)


def count_rows(engine: Engine, table: str) -> int:
    with engine.connect() as connection:
        return int(connection.execute(text(f"SELECT count(*) FROM {table}")).scalar_one())  # noqa: S608
