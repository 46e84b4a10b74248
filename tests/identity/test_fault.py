"""PostgreSQL stops in the middle of a run of audited predictions: every record arrives once.

A throwaway server (initdb into a temporary directory, run as the ``postgres`` user) is stopped
with ``-m immediate`` (sessions cut, like a crash) while records keep being submitted, then
started again. Nothing may be lost, nothing written twice, and ``submit()`` must never fail.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import text

from hearteye_platform.audit import AuditRecord, AuditWriter, new_request_id, signal_sha256
from hearteye_platform.db import create_db_engine, upgrade_database
from tests.identity.pg import PgDatabase, ThrowawayPostgres, create_database, pg_bin

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(pg_bin("initdb") is None, reason="needs PostgreSQL's initdb and pg_ctl"),
]

STOP_AT = 80  # records submitted before the server is stopped
OUTAGE = 120  # records submitted while it is down
AFTER = 80  # records submitted after it is back (while the spool replays)


@pytest.fixture
def throwaway() -> Iterator[tuple[ThrowawayPostgres, PgDatabase]]:
    with ThrowawayPostgres() as server:
        database = create_database(server.admin_url)
        upgrade_database(database.owner_url, app_role=database.app_role)
        yield server, database


def test_records_survive_a_database_outage_exactly_once(
    throwaway: tuple[ThrowawayPostgres, PgDatabase], tmp_path: Path
) -> None:
    server, database = throwaway
    engine = create_db_engine(database.app_url, pool_size=2, max_overflow=0, connect_timeout_s=2)
    writer = AuditWriter(
        engine, tmp_path / "spool", batch_size=20, replay_interval_s=0.2, retry_max_s=0.5
    )
    writer.start()
    submitted: list[str] = []
    done = threading.Event()
    progress = threading.Condition()
    errors: list[BaseException] = []

    def predictions() -> None:
        try:
            i = 0
            while not done.is_set():
                i += 1
                request_id = new_request_id()
                writer.submit(
                    AuditRecord(
                        request_id=request_id,
                        occurred_at=datetime.now(UTC),
                        username="clinician1",
                        client_addr="10.1.2.3",
                        route="/api/v1/predict",
                        model_name="ecg-xgboost",
                        model_version=str(1 + i % 3),
                        run_id="r" * 32,
                        signal_sha256=signal_sha256([float(i)] * 8),
                        n_beats=i % 20,
                        label_counts={"N": i % 20},
                        latency_ms=3.0,
                        status_code=200,
                    )
                )
                with progress:
                    submitted.append(request_id)
                    progress.notify_all()
                time.sleep(0.01)
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)
            raise

    def reach(n: int) -> None:
        with progress:
            assert progress.wait_for(lambda: len(submitted) >= n or bool(errors), timeout=60)

    client = threading.Thread(target=predictions)
    client.start()
    reach(STOP_AT)
    server.stop("immediate")
    stopped_at = len(submitted)
    reach(stopped_at + OUTAGE)
    during_outage = writer.stats()
    server.start()
    restarted_at = len(submitted)
    reach(restarted_at + AFTER)
    done.set()
    client.join(timeout=60)
    assert not errors, errors
    assert writer.flush(timeout_s=60), writer.stats()
    writer.close()
    stats = writer.stats()

    with engine.connect() as connection:
        rows = connection.execute(text("SELECT request_id FROM prediction_audit")).scalars().all()
    engine.dispose()
    print(
        f"\nfault test: {len(submitted)} submitted, server stopped after {stopped_at} and "
        f"restarted after {restarted_at}; {stats.spooled} spooled, {stats.replayed} replayed, "
        f"{stats.duplicates} duplicates ignored; {len(rows)} rows, {len(set(rows))} distinct"
    )
    assert not during_outage.database_available
    assert stats.spooled > 0  # the fault path really ran
    assert stats.replayed > 0
    assert len(rows) == len(set(rows)) == len(submitted)  # exactly once
    assert set(rows) == set(submitted)  # nothing lost
    assert stats.rejected == 0
    assert writer.spool.pending(10) == []
