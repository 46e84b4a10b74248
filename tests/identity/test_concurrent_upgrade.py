"""Several workers start at once against a fresh database: the migration runs once, all succeed."""

from __future__ import annotations

import multiprocessing
import multiprocessing.synchronize
import queue
import sqlite3
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import create_engine, inspect, text

from hearteye_platform.db import create_db_engine, head_revision, upgrade_database
from tests.identity.pg import PgDatabase, create_database, drop_database

pytestmark = pytest.mark.integration

WORKERS = 6
#: Forked like Gunicorn's workers (the master imported the code, each worker runs the lifespan).
CONTEXT = multiprocessing.get_context("fork")


@pytest.fixture
def fresh_pg(pg_admin_url: str) -> Iterator[PgDatabase]:
    database = create_database(pg_admin_url, prefix="hearteye_race")
    yield database
    drop_database(database)


def worker(
    url: str,
    app_role: str | None,
    barrier: multiprocessing.synchronize.Barrier,
    results: multiprocessing.Queue[tuple[str | None, str | None] | str],
) -> None:
    barrier.wait(timeout=60)  # every worker released at the same instant
    try:
        result = upgrade_database(url, app_role=app_role, lock_timeout_s=60)
    except Exception as exc:
        results.put(f"{type(exc).__name__}: {exc}")
        raise
    results.put((result.from_revision, result.to_revision))


def start_together(url: str, app_role: str | None) -> list[tuple[str | None, str | None]]:
    barrier = CONTEXT.Barrier(WORKERS)
    results: multiprocessing.Queue[tuple[str | None, str | None] | str] = CONTEXT.Queue()
    processes = [
        CONTEXT.Process(target=worker, args=(url, app_role, barrier, results))
        for _ in range(WORKERS)
    ]
    for process in processes:
        process.start()
    collected = []
    try:
        for _ in range(WORKERS):
            collected.append(results.get(timeout=120))
    except queue.Empty:
        pass
    for process in processes:
        process.join(timeout=30)
    failures = [r for r in collected if isinstance(r, str)]
    assert not failures, failures
    assert [p.exitcode for p in processes] == [0] * WORKERS
    return [r for r in collected if not isinstance(r, str)]


def assert_migrated_once(results: list[tuple[str | None, str | None]]) -> None:
    head = head_revision()
    assert len(results) == WORKERS
    assert all(to == head for _, to in results)
    # exactly one worker found the database empty and migrated it; the others found it at head
    assert sorted(before or "" for before, _ in results) == ["", *[head] * (WORKERS - 1)]


def test_concurrent_start_on_postgresql(fresh_pg: PgDatabase, tmp_path: Path) -> None:
    results = start_together(fresh_pg.owner_url, fresh_pg.app_role)
    assert_migrated_once(results)
    engine = create_engine(fresh_pg.app_url)
    with engine.connect() as connection:
        assert connection.execute(text("SELECT count(*) FROM alembic_version")).scalar_one() == 1
        assert connection.execute(text("SELECT count(*) FROM prediction_audit")).scalar_one() == 0
    assert {"users", "prediction_audit"} <= set(inspect(engine).get_table_names())
    engine.dispose()


def test_concurrent_start_on_sqlite(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'hearteye.db'}"
    assert_migrated_once(start_together(url, None))


def test_a_sqlite_connection_waits_for_the_wal_switch_while_another_writes(
    tmp_path: Path,
) -> None:
    """The race behind a rare failure of the test above: a new connection switches the file to
    WAL while another process holds a write lock. SQLite answers that switch "database is
    locked" at once (no busy timeout); the engine's connect hook retries until the lock goes."""
    path = tmp_path / "hearteye.db"
    setup = sqlite3.connect(path)
    setup.execute("CREATE TABLE t (a)")
    setup.commit()
    setup.close()
    writer = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    writer.execute("BEGIN IMMEDIATE")  # a write lock, on a database still in rollback mode
    release = threading.Timer(0.3, lambda: writer.execute("COMMIT"))
    release.start()
    engine = create_db_engine(f"sqlite:///{path}", pooled=False)
    started = time.monotonic()
    try:
        with engine.connect() as connection:
            assert connection.execute(text("PRAGMA journal_mode")).scalar_one() == "wal"
        assert time.monotonic() - started >= 0.25  # it waited for the writer
    finally:
        release.join()
        writer.close()
        engine.dispose()
