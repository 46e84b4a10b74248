"""The local spool: audit records that could not reach the database, one fsynced file each.

A record is written to ``tmp/<name>``, fsynced, renamed into the spool directory and the
directory fsynced: after a crash a spool file is either complete or absent. Replaying inserts
with "on conflict (request_id) do nothing" and only then deletes the file, so a crash between
the two re-inserts nothing. Several processes may share one spool directory.
"""

from __future__ import annotations

import json
import logging
import os
import time
import uuid
from collections.abc import Sequence
from pathlib import Path

from pydantic import ValidationError

from hearteye_platform.audit.record import AuditRecord

logger = logging.getLogger(__name__)

#: A temporary file older than this was abandoned by a crashed writer (a write takes ms).
STALE_TMP_S = 600.0


class SpoolCorruptError(Exception):
    """A spool file does not hold a valid audit record."""


class Spool:
    """A directory of pending audit records, oldest first by name."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.tmp_dir = directory / "tmp"
        self.rejected_dir = directory / "rejected"

    def prepare(self) -> None:
        """Create the directories and recover records a crashed writer left in ``tmp/``."""
        for path in (self.directory, self.tmp_dir, self.rejected_dir):
            path.mkdir(parents=True, exist_ok=True)
        now = time.time()
        for tmp in self.tmp_dir.glob("*.json"):
            try:
                if now - tmp.stat().st_mtime < STALE_TMP_S:
                    continue
                self.read(tmp)
            except FileNotFoundError:
                continue
            except SpoolCorruptError:
                logger.warning(
                    "discarding incomplete audit spool file %s (never acknowledged)", tmp
                )
                tmp.unlink(missing_ok=True)
                continue
            os.replace(tmp, self.directory / tmp.name)
            logger.warning("recovered audit record from %s", tmp)
        _fsync_dir(self.directory)

    def write(self, records: Sequence[AuditRecord]) -> None:
        """Durably add ``records`` (one file each); returns once they are on disk."""
        self._write(records, self.directory)

    def _write(self, records: Sequence[AuditRecord], directory: Path) -> list[Path]:
        if not records:
            return []
        self.tmp_dir.mkdir(parents=True, exist_ok=True)
        names = []
        for record in records:
            name = f"{time.time_ns():020d}-{uuid.uuid4().hex}.json"
            fd = os.open(self.tmp_dir / name, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            try:
                os.write(fd, record.model_dump_json().encode())
                os.fsync(fd)
            finally:
                os.close(fd)
            names.append(name)
        for name in names:
            os.replace(self.tmp_dir / name, directory / name)
        _fsync_dir(directory)
        return [directory / name for name in names]

    def pending(self, limit: int) -> list[Path]:
        """Up to ``limit`` spool files, oldest first."""
        try:
            names = sorted(
                entry.name
                for entry in os.scandir(self.directory)
                if entry.name.endswith(".json") and entry.is_file()
            )
        except FileNotFoundError:
            return []
        return [self.directory / name for name in names[:limit]]

    def count(self) -> int:
        return len(self.pending(limit=1 << 62))

    @staticmethod
    def read(path: Path) -> AuditRecord:
        """The record in ``path``; ``FileNotFoundError`` if another process replayed it first."""
        data = path.read_bytes()
        try:
            return AuditRecord.model_validate(json.loads(data))
        except (ValueError, ValidationError) as exc:
            raise SpoolCorruptError(f"{path}: {exc}") from exc

    @staticmethod
    def remove(paths: Sequence[Path]) -> None:
        """Delete replayed files (missing ones were replayed by another process)."""
        for path in paths:
            path.unlink(missing_ok=True)

    def reject(self, path: Path, reason: str) -> None:
        """Move a file the database refuses aside (kept for a person to look at, never lost)."""
        self.rejected_dir.mkdir(parents=True, exist_ok=True)
        try:
            os.replace(path, self.rejected_dir / path.name)
        except FileNotFoundError:
            return
        (self.rejected_dir / f"{path.name}.reason.txt").write_text(reason + "\n")
        logger.error("audit record %s rejected: %s", path.name, reason)

    def reject_record(self, record: AuditRecord, reason: str) -> None:
        """Keep a record the database refused (e.g. a request-id collision) under rejected/."""
        self.rejected_dir.mkdir(parents=True, exist_ok=True)
        (path,) = self._write([record], self.rejected_dir)
        (self.rejected_dir / f"{path.name}.reason.txt").write_text(reason + "\n")
        logger.error("audit record %s rejected: %s", record.request_id, reason)


def _fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
