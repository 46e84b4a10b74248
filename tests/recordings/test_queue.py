"""The analysis queue on a real database: each job claimed once, SKIP LOCKED, crashed workers."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import text
from sqlalchemy.orm import Session, sessionmaker

from hearteye_platform.db import create_db_engine, create_session_factory, upgrade_database
from hearteye_platform.db.models import AnalysisRow, RecordingRow
from hearteye_platform.recordings import RecordingStore
from hearteye_platform.recordings.store import MAX_ATTEMPTS
from tests.identity.pg import create_database, drop_database


@pytest.fixture(params=["sqlite", "postgresql"])
def sessions(
    request: pytest.FixtureRequest, tmp_path: Path, pg_admin_url: str
) -> Iterator[sessionmaker[Session]]:
    """A migrated platform database, reached as the application role on PostgreSQL."""
    database = None
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'he.db'}"
        upgrade_database(url)
    else:
        database = create_database(pg_admin_url, prefix="recordings_queue")
        upgrade_database(database.owner_url, app_role=database.app_role)
        url = database.app_url
    engine = create_db_engine(url, pool_size=8, max_overflow=4)
    try:
        yield create_session_factory(engine)
    finally:
        engine.dispose()
        if database is not None:
            drop_database(database)


def _jobs(store: RecordingStore, n: int) -> list[str]:
    now = datetime.now(UTC)
    store.add_recording(
        RecordingRow(
            id="r" * 32,
            owner="carla",
            name="r",
            format="csv",
            fs=360.0,
            n_samples=3600,
            leads=["MLII"],
            default_lead="MLII",
            sha256="0" * 64,
            size_bytes=1,
            files=[{"name": "r.csv", "sha256": "0" * 64, "size_bytes": 1}],
            created_at=now,
        )
    )
    ids = []
    for i in range(n):
        job = f"{i:032x}"
        store.add_analysis(
            AnalysisRow(
                id=job,
                recording_id="r" * 32,
                owner="carla",
                model_name="ecg-xgboost",
                lead="MLII",
                status="queued",
                progress=0.0,
                attempts=0,
                created_at=now + timedelta(milliseconds=i),
            )
        )
        ids.append(job)
    return ids


def test_concurrent_workers_claim_each_job_once(sessions: sessionmaker[Session]) -> None:
    store = RecordingStore(sessions)
    ids = _jobs(store, 24)
    claimed: list[tuple[str, str]] = []
    lock = threading.Lock()

    def worker(name: str) -> None:
        while (job := store.claim_next(name, lease_s=60)) is not None:
            with lock:
                claimed.append((job.id, name))
            assert store.finish(job.id, name, n_beats=0)

    threads = [threading.Thread(target=worker, args=(f"w{i}",)) for i in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert sorted(job for job, _ in claimed) == ids
    assert store.pending(ids) == 0


def test_a_locked_job_is_skipped_not_waited_for(sessions: sessionmaker[Session]) -> None:
    store = RecordingStore(sessions)
    first, second = _jobs(store, 2)
    with sessions() as holder:
        if holder.bind.dialect.name != "postgresql":  # type: ignore[union-attr]
            pytest.skip("row locks are PostgreSQL's")
        # Another worker's transaction holds the oldest job's row lock (mid-claim).
        holder.execute(
            text("SELECT id FROM analyses WHERE id = :id FOR UPDATE"), {"id": first}
        ).one()
        started = time.monotonic()
        job = store.claim_next("w2", lease_s=60)
        assert job is not None
        assert job.id == second
        assert time.monotonic() - started < 2.0
        holder.rollback()
    job = store.claim_next("w3", lease_s=60)
    assert job is not None
    assert job.id == first


def test_a_crashed_worker_leaves_the_job_rerunnable(sessions: sessionmaker[Session]) -> None:
    store = RecordingStore(sessions)
    (job_id,) = _jobs(store, 1)
    job = store.claim_next("dead", lease_s=0.5)
    assert job is not None
    assert (job.status, job.attempts) == ("running", 1)
    assert store.claim_next("alive", lease_s=60) is None  # leased: nobody else takes it
    time.sleep(0.7)  # "dead" never renews
    again = store.claim_next("alive", lease_s=60)
    assert again is not None
    assert (again.id, again.attempts) == (job_id, 2)
    assert not store.renew(job_id, "dead", 60, 0.5)  # the old worker learns it lost the job
    assert not store.finish(job_id, "dead", n_beats=1)
    assert store.finish(job_id, "alive", n_beats=2)
    row = store.get_analysis(job_id, None)
    assert (row.status, row.n_beats, row.progress) == ("done", 2, 1.0)


def test_a_job_that_keeps_crashing_fails(sessions: sessionmaker[Session]) -> None:
    store = RecordingStore(sessions)
    (job_id,) = _jobs(store, 1)
    for _ in range(MAX_ATTEMPTS):
        assert store.claim_next("dying", lease_s=0.2) is not None
        time.sleep(0.3)
    assert store.claim_next("next", lease_s=60) is None
    row = store.get_analysis(job_id, None)
    assert row.status == "failed"
    assert row.error is not None
    assert "gave up after 3 attempts" in row.error


def test_delete_reports_files_no_other_recording_uses(sessions: sessionmaker[Session]) -> None:
    store = RecordingStore(sessions)
    _jobs(store, 2)
    twin = store.get_recording("r" * 32, None)
    store.add_recording(
        RecordingRow(
            **{c: getattr(twin, c) for c in ("owner", "name", "format", "fs", "n_samples")},
            id="t" * 32,
            leads=["MLII"],
            default_lead="MLII",
            sha256=twin.sha256,
            size_bytes=1,
            files=list(twin.files),
            created_at=datetime.now(UTC),
        )
    )
    assert store.list_recordings("carla", query="R").total == 2
    assert store.list_recordings("olga").total == 0
    unused, beats = store.delete_recording("r" * 32, "carla")
    assert (unused, beats) == ([], [])  # the twin still uses the file
    assert store.list_analyses("r" * 32) == []
    unused, _ = store.delete_recording("t" * 32, None)
    assert unused == ["0" * 64]
