"""An audit record submitted just before its process is killed (kill -9) is stored, exactly once.

Found by `make chaos` (docs/reliability.md): the writer keeps a record in memory for its linger
before inserting it, so a worker killed then lost the records of answers it had already sent.
The journal (hearteye_platform/audit/journal.py) keeps each record on disk from ``submit()`` on.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from hearteye_platform.audit import AuditWriter
from tests.identity.conftest import PlatformDb, count_rows
from tests.identity.test_audit import record

#: A writer that submits records with a long linger (nothing inserted yet), says so, then waits.
_CHILD = """
import sys, time
from pathlib import Path
from hearteye_platform.audit import AuditWriter
from hearteye_platform.db import create_db_engine
from tests.identity.test_audit import record

writer = AuditWriter(create_db_engine(sys.argv[1]), Path(sys.argv[2]), linger_s=60.0)
writer.start()
inserted = record(request_id="f" * 32)
writer.submit(inserted)
writer.flush()
for i in range(5):
    writer.submit(record(request_id=f"{i:032x}"))
print("submitted", flush=True)
time.sleep(600)
"""


def test_records_of_a_killed_writer_are_stored_once(
    platform_db: PlatformDb, tmp_path: Path
) -> None:
    spool = tmp_path / "spool"
    child = subprocess.Popen(
        [sys.executable, "-c", _CHILD, platform_db.url, str(spool)],
        stdout=subprocess.PIPE,
        cwd=Path(__file__).resolve().parents[2],
        env={**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])},
    )
    try:
        assert child.stdout is not None
        assert child.stdout.readline().strip() == b"submitted"
    finally:
        os.kill(child.pid, signal.SIGKILL)
        child.wait(30)
        child.stdout.close()
    assert count_rows(platform_db.engine, "prediction_audit") == 1  # the flushed one only

    # The next writer on the same spool (the worker that replaces the killed one) takes over the
    # dead process's journal: the five records go in; the flushed one is not stored twice.
    with AuditWriter(platform_db.engine, spool, replay_interval_s=0.1) as writer:
        deadline = time.monotonic() + 30
        while count_rows(platform_db.engine, "prediction_audit") < 6:
            assert time.monotonic() < deadline
            writer.flush(timeout_s=5)
            time.sleep(0.1)
        stats = writer.stats()
    assert (stats.spooled, stats.duplicates) == (6, 1)  # all six journaled; one already stored
    assert count_rows(platform_db.engine, "prediction_audit") == 6
    assert not list((spool / "journal").glob("*.jsonl"))  # settled segments are gone
    assert not list(spool.glob("*.json"))


def test_a_live_writers_journal_is_left_alone(platform_db: PlatformDb, tmp_path: Path) -> None:
    spool = tmp_path / "spool"
    with AuditWriter(platform_db.engine, spool, linger_s=60.0) as busy:
        busy.submit(record())
        other = AuditWriter(platform_db.engine, spool)
        assert other.journal.orphans() == []  # held by ``busy`` (this very process, even)
    assert count_rows(platform_db.engine, "prediction_audit") == 1
