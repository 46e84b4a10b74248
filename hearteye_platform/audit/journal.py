"""The audit journal: every submitted record on disk before the answer leaves, so kill -9 loses none.

``AuditWriter.submit()`` queues a record in memory and a thread inserts it ~50 ms later; a
process killed in between (kill -9, the OOM killer) took the record with it although the client
had its answer (found by ``make chaos``, docs/reliability.md). So ``submit()`` first appends the
record as one JSON line to this process's journal segment: one ``write()`` to a file opened with
``O_APPEND``, no fsync, a few microseconds. The kernel keeps what was written when the process
dies (a power loss is another matter: then the spool's fsync is what counts). Once a record is
inserted or spooled it is settled; a segment is deleted when every record in it is settled and a
newer segment has taken over.

Each process holds an exclusive ``flock`` on each of its segments; the kernel releases it when
the process dies, however it dies. Any writer (the worker that replaces a killed one, a sibling)
takes over a segment whose lock it can get: its records go to the spool, and the spool's replay
inserts them with ``ON CONFLICT (request_id) DO NOTHING``, so a record that was inserted before
the crash is not stored twice.
"""

from __future__ import annotations

import fcntl
import json
import logging
import os
import threading
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

from pydantic import ValidationError

from hearteye_platform.audit.record import AuditRecord

logger = logging.getLogger(__name__)

#: Records per segment before a new one starts (the old one goes once all of it is settled).
SEGMENT_RECORDS = 2000


@dataclass
class _Segment:
    path: Path
    fd: int
    appended: int = 0
    settled: int = 0
    closed: bool = False


class Journal:
    """This process's journal segments in ``directory`` (shared by the processes of one spool)."""

    def __init__(self, directory: Path, segment_records: int = SEGMENT_RECORDS) -> None:
        self.directory = directory
        self._segment_records = segment_records
        self._lock = threading.Lock()
        self._current: _Segment | None = None
        self._of: dict[str, _Segment] = {}  # request id -> the segment holding it

    def append(self, record: AuditRecord) -> None:
        line = record.model_dump_json().encode() + b"\n"
        with self._lock:
            segment = self._current
            if segment is None or segment.appended >= self._segment_records:
                segment = self._rotate()
            os.write(segment.fd, line)
            segment.appended += 1
            self._of[record.request_id] = segment

    def settle(self, records: list[AuditRecord]) -> None:
        """``records`` are inserted or spooled: their lines are no longer needed."""
        with self._lock:
            for record in records:
                segment = self._of.pop(record.request_id, None)
                if segment is not None:
                    segment.settled += 1
                    self._drop_if_done(segment)

    def close(self) -> None:
        """At a clean shutdown, after every record was settled: remove what is left."""
        with self._lock:
            for segment in {id(s): s for s in self._of.values()}.values():
                segment.closed = True
            if self._current is not None:
                self._current.closed = True
                self._drop_if_done(self._current)
                self._current = None

    def orphans(self) -> list[tuple[Path, int, list[AuditRecord]]]:
        """Segments no live process holds: (path, locked fd, records). A torn last line (the
        process died inside ``write``) is skipped: that record's answer never left."""
        found = []
        try:
            paths = sorted(self.directory.glob("*.jsonl"))
        except OSError:
            return []
        for path in paths:
            try:
                fd = os.open(path, os.O_RDONLY)
            except FileNotFoundError:
                continue
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                os.close(fd)  # a live process (this one included) holds it
                continue
            if not path.exists():  # taken over and removed by another process meanwhile
                os.close(fd)
                continue
            found.append((path, fd, _read(path)))
        return found

    @staticmethod
    def release(path: Path, fd: int) -> None:
        """Remove an orphan segment once its records are spooled."""
        path.unlink(missing_ok=True)
        os.close(fd)

    def _rotate(self) -> _Segment:
        self.directory.mkdir(parents=True, exist_ok=True)
        path = self.directory / f"{time.time_ns():020d}-{os.getpid()}-{uuid.uuid4().hex[:8]}.jsonl"
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_APPEND, 0o600)
        fcntl.flock(fd, fcntl.LOCK_EX)
        previous, self._current = self._current, _Segment(path, fd)
        if previous is not None:
            previous.closed = True
            self._drop_if_done(previous)
        return self._current

    @staticmethod
    def _drop_if_done(segment: _Segment) -> None:
        if segment.closed and segment.settled >= segment.appended and segment.fd >= 0:
            segment.path.unlink(missing_ok=True)
            os.close(segment.fd)
            segment.fd = -1


def _read(path: Path) -> list[AuditRecord]:
    records = []
    for line in path.read_bytes().splitlines():
        try:
            records.append(AuditRecord.model_validate(json.loads(line)))
        except (ValueError, ValidationError):
            logger.warning("skipping a torn line of audit journal %s", path)
    return records
