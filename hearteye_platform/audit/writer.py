"""``AuditWriter``: writes audit records without ever blocking or failing a prediction.

``submit()`` only puts the record on an in-memory queue. A background thread inserts queued
records in batches; when the database is unreachable it spools them to disk (fsynced, see
``hearteye_platform.audit.spool``) and backs off, and it replays the spool once the database answers
again. Inserts are idempotent on ``request_id``, so a record spooled after an insert whose commit
did reach the server is still stored exactly once.

Batches: after the first record of a batch arrives the thread waits ``linger_s`` (default 50 ms)
for more, then writes them all in one transaction with one cached ``INSERT ... ON CONFLICT DO
NOTHING RETURNING`` statement executed for many rows. A transaction costs ~1 ms of CPU whatever
its size (connection check-out, begin, commit), so under load the linger turns one transaction
per request into one per ~50 ms.

Window of loss: none for a crash of the process. ``submit()`` first appends the record to this
process's journal (``hearteye_platform.audit.journal``: one unsynced ``write()``), which outlives
a kill -9; the journal of a dead process is spooled by the next writer that starts or replays.
A power loss can still take what is neither inserted nor spooled (the linger plus a few
milliseconds). ``close()`` at shutdown drains the queue. A full queue spools in the caller's
thread rather than drop anything.
"""

from __future__ import annotations

import atexit
import logging
import queue
import threading
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any

from sqlalchemy import select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Engine

from hearteye_platform.audit.journal import Journal
from hearteye_platform.audit.record import AuditRecord
from hearteye_platform.audit.spool import Spool, SpoolCorruptError
from hearteye_platform.db.engine import is_unavailable
from hearteye_platform.db.models import AuditEntry

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class AuditWriterStats:
    """Counters since start, for /health and /metrics."""

    submitted: int
    inserted: int
    duplicates: int
    spooled: int
    replayed: int
    rejected: int
    queued: int
    spool_files: int
    database_available: bool
    last_error: str | None


class AuditWriter:
    """Insert audit records in the background; spool them while the database is away."""

    def __init__(
        self,
        engine: Engine,
        spool_dir: Path,
        *,
        batch_size: int = 200,
        max_queue: int = 10_000,
        poll_interval_s: float = 0.05,
        linger_s: float = 0.05,
        replay_interval_s: float = 1.0,
        retry_max_s: float = 30.0,
    ) -> None:
        self._engine = engine
        self.spool = Spool(spool_dir)
        self.journal = Journal(spool_dir / "journal")
        self._batch_size = batch_size
        self._poll_interval_s = poll_interval_s
        self._linger_s = linger_s
        self._statement: Any = None  # built on first use, then reused (compiled once, cached)
        self._replay_interval_s = replay_interval_s
        self._retry_max_s = retry_max_s
        self._queue: queue.Queue[AuditRecord] = queue.Queue(maxsize=max_queue)
        self._work = threading.Lock()  # one of (background thread, flush) touches DB/spool
        self._counts = threading.Lock()
        self._stop = threading.Event()
        self._ready = threading.Event()  # set by submit(): the queue holds records
        self._thread: threading.Thread | None = None
        self._closed = False
        self._retry_at = 0.0
        self._backoff_s = 0.0
        self._next_replay = 0.0
        self._available = True
        self._last_error: str | None = None
        self._spool_files = 0
        self._unsettled = 0  # queued or in the thread's hands, neither inserted nor spooled
        self._n: dict[str, int] = dict.fromkeys(
            ("submitted", "inserted", "duplicates", "spooled", "replayed", "rejected"), 0
        )

    # -- public API ----------------------------------------------------------------------------

    def start(self) -> None:
        """Prepare the spool (recovering crashed writes) and start the background thread."""
        self.spool.prepare()
        self._adopt_orphans()
        self._spool_files = self.spool.count()
        if self._spool_files:
            logger.warning("%d audit records wait in %s", self._spool_files, self.spool.directory)
        self._thread = threading.Thread(target=self._run, name="audit-writer", daemon=True)
        self._thread.start()
        atexit.register(self.close)

    def submit(self, record: AuditRecord) -> None:
        """Hand over one record; returns at once and never raises for database trouble."""
        self._count("submitted")
        try:
            self.journal.append(record)
        except OSError:  # the queue and the spool still hold it; only a crash would lose it now
            logger.exception("cannot journal audit record %s", record.request_id)
        if self._closed:
            self._spool_records([record])
            self.journal.settle([record])
            return
        self._settle(-1)
        try:
            self._queue.put_nowait(record)
            self._ready.set()
        except queue.Full:
            self._settle(1)
            logger.warning("audit queue full: spooling %s in the request thread", record.request_id)
            self._spool_records([record])
            self.journal.settle([record])

    def flush(self, timeout_s: float = 30.0) -> bool:
        """Write everything queued and try to replay the whole spool now (ignoring back-off).

        True when every record is in the database; False when some remain safely spooled (or
        the background thread still holds some at the deadline).
        """
        deadline = time.monotonic() + timeout_s
        while True:
            with self._work:
                while batch := self._take(self._batch_size):
                    self._store(batch)
                if self._pending() == 0 or time.monotonic() >= deadline:
                    self._replay(force=True, deadline=deadline)
                    return self._pending() == 0 and self.spool.count() == 0
            # A submit() in another thread is between counting its record and queueing it.
            time.sleep(0.005)

    def close(self, timeout_s: float = 30.0) -> None:
        """Stop the thread and flush; whatever cannot be written stays spooled on disk."""
        if self._closed:
            return
        self._closed = True
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout_s)
        atexit.unregister(self.close)
        self.flush(timeout_s)
        if self._pending() == 0:
            self.journal.close()

    def stats(self) -> AuditWriterStats:
        with self._counts:
            counts = dict(self._n)
        return AuditWriterStats(
            **counts,
            queued=self._queue.qsize(),
            spool_files=self._spool_files,
            database_available=self._available,
            last_error=self._last_error,
        )

    def __enter__(self) -> AuditWriter:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    # -- background work -----------------------------------------------------------------------

    def _run(self) -> None:
        while not self._stop.is_set():
            # Records leave the queue only under ``_work``: a record taken outside it could be
            # overtaken by a flush() storing the ones queued after it (the spool's order).
            if self._ready.wait(self._poll_interval_s) and self._linger_s > 0:
                self._stop.wait(self._linger_s)  # let the batch fill (close() cuts it short)
            self._ready.clear()  # before taking: a record queued after this sets it again
            with self._work:
                try:
                    if batch := self._take(self._batch_size):
                        self._store(batch)
                    if not self._queue.empty():
                        self._ready.set()
                    if time.monotonic() >= self._next_replay:
                        self._adopt_orphans()
                        self._replay(force=False, deadline=time.monotonic() + 1.0)
                except Exception:  # the thread must outlive any surprise; records are spooled
                    logger.exception("audit writer cycle failed")

    def _take(self, limit: int) -> list[AuditRecord]:
        batch: list[AuditRecord] = []
        while len(batch) < limit:
            try:
                batch.append(self._queue.get_nowait())
            except queue.Empty:
                break
        return batch

    def _store(self, batch: list[AuditRecord]) -> None:
        try:
            if time.monotonic() < self._retry_at:  # known down: don't wait on connect timeouts
                self._spool_records(batch)
                self.journal.settle(batch)
                return
            try:
                self._insert(batch)
            except Exception as exc:
                self._spool_records(batch)
                self.journal.settle(batch)
                self._failed(exc)
                return
            self.journal.settle(batch)
            self._succeeded()
        finally:
            self._settle(len(batch))

    def _adopt_orphans(self) -> None:
        """Spool the journal of every process that died with records unsettled."""
        for path, fd, records in self.journal.orphans():
            self._spool_records(records)
            self.journal.release(path, fd)
            if records:
                logger.warning(
                    "spooled %d audit records from %s (its process died)", len(records), path.name
                )

    def _spool_records(self, records: Sequence[AuditRecord]) -> None:
        try:
            self.spool.write(records)
        except OSError:
            logger.critical(
                "cannot spool %d audit records (database and disk both failing): %s",
                len(records),
                ", ".join(r.request_id for r in records),
                exc_info=True,
            )
            raise
        self._count("spooled", len(records))
        self._spool_files += len(records)

    def _replay(self, *, force: bool, deadline: float) -> None:
        if not force and time.monotonic() < self._retry_at:
            return
        self._next_replay = time.monotonic() + self._replay_interval_s
        while True:
            paths = self.spool.pending(self._batch_size)
            if not paths:
                self._spool_files = 0
                return
            good: list[tuple[Path, AuditRecord]] = []
            for path in paths:
                try:
                    good.append((path, self.spool.read(path)))
                except FileNotFoundError:  # another process replayed it
                    continue
                except SpoolCorruptError as exc:
                    self.spool.reject(path, str(exc))
                    self._count("rejected")
            try:
                self._insert([record for _, record in good])
            except Exception as exc:
                if is_unavailable(exc):
                    self._failed(exc)
                    return
                if not self._replay_one_by_one(good):
                    return
            else:
                self.spool.remove([path for path, _ in good])
                self._count("replayed", len(good))
                self._succeeded()
            self._spool_files = self.spool.count()
            if time.monotonic() > deadline:
                return

    def _replay_one_by_one(self, items: list[tuple[Path, AuditRecord]]) -> bool:
        """Isolate a record the database refuses; False if the database went away meanwhile."""
        for path, record in items:
            try:
                self._insert([record])
            except Exception as exc:
                if is_unavailable(exc):
                    self._failed(exc)
                    return False
                self.spool.reject(path, f"database refused the record: {exc}")
                self._count("rejected")
                continue
            self.spool.remove([path])
            self._count("replayed")
        return True

    def _insert(self, records: list[AuditRecord]) -> None:
        """One transaction; records whose request id is already stored are skipped."""
        if not records:
            return
        table = AuditEntry.__table__
        ids = Counter(record.request_id for record in records)
        with self._engine.begin() as connection:
            rows = [record.to_row() for record in records]
            inserted = set(connection.execute(self._insert_statement(), rows).scalars())
            # Already stored (a replay), or repeated within this batch: compare with what is stored.
            check = {i for i, n in ids.items() if i not in inserted or n > 1}
            stored = (
                {
                    row.request_id: AuditRecord.from_entry(row)
                    for row in connection.execute(
                        select(table).where(table.c.request_id.in_(check))
                    )
                }
                if check
                else {}
            )
        credited: set[str] = set()
        for record in records:
            if record.request_id not in check:
                self._count("inserted")
            elif stored.get(record.request_id) == record:
                if record.request_id in inserted and record.request_id not in credited:
                    credited.add(record.request_id)
                    self._count("inserted")
                else:
                    self._count("duplicates")
            else:
                self.spool.reject_record(
                    record, f"request id {record.request_id} already stored with other content"
                )
                self._count("rejected")

    def _insert_statement(self) -> Any:
        """``INSERT ... ON CONFLICT (request_id) DO NOTHING RETURNING request_id``, without
        values: executed for many rows at once, and compiled once (SQLAlchemy's statement cache)
        rather than once per batch as a multi-row ``VALUES`` statement would be."""
        if self._statement is None:
            table = AuditEntry.__table__
            dialect: Any = postgresql if self._engine.dialect.name == "postgresql" else sqlite
            self._statement = (
                dialect.insert(table)
                .on_conflict_do_nothing(index_elements=["request_id"])
                .returning(table.c.request_id)
            )
        return self._statement

    def _succeeded(self) -> None:
        self._available = True
        self._backoff_s = 0.0
        self._retry_at = 0.0

    def _failed(self, exc: BaseException) -> None:
        message = str(getattr(exc, "orig", None) or exc).strip().splitlines()
        self._last_error = message[0] if message else type(exc).__name__
        if is_unavailable(exc):
            self._available = False
            self._backoff_s = min(max(self._backoff_s * 2, 0.5), self._retry_max_s)
            logger.warning(
                "audit database unavailable (%s): spooling, retry in %.1f s",
                self._last_error,
                self._backoff_s,
            )
        else:
            self._backoff_s = 1.0
            logger.error("audit insert failed, records spooled: %s", exc, exc_info=exc)
        self._retry_at = time.monotonic() + self._backoff_s

    def _settle(self, n: int) -> None:
        """``n`` records inserted or spooled (negative: handed over, not yet either)."""
        with self._counts:
            self._unsettled -= n

    def _pending(self) -> int:
        with self._counts:
            return self._unsettled

    def _count(self, name: str, n: int = 1) -> None:
        with self._counts:
            self._n[name] += n
