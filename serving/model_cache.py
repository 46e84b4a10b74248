"""On-disk cache of downloaded versions, shared by the workers of one instance.

Layout under ``model_cache_dir``::

    <model>/<version>/           the version's whole model directory (MLmodel, artifacts/, ...)
    <model>/<version>.lock       held while one worker downloads or deletes that version
    <model>/production.json      the last production version a worker swapped in

A version directory appears atomically (downloaded into a temporary sibling, then renamed), so a
directory that exists is complete. ``production.json`` lets a restart serve the last known
production versions while the registry is unreachable.
"""

from __future__ import annotations

import json
import os
import shutil
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from filelock import FileLock

from hearteye.errors import HeartEyeError

#: How long a worker waits for another one downloading the same version.
LOCK_TIMEOUT_S = 300.0


class CacheError(HeartEyeError):
    """The cache holds nothing usable for the request."""


@dataclass(frozen=True)
class CachedProduction:
    """What ``production.json`` records."""

    name: str
    version: str
    run_id: str | None
    recorded_at: str


class ModelCache:
    """Downloaded versions on disk, keyed by model name and version."""

    def __init__(self, root: Path, keep: int = 3) -> None:
        self.root = root
        self.keep = keep

    def _model_dir(self, name: str) -> Path:
        if not name or "/" in name or name.startswith("."):
            raise CacheError(f"model name {name!r} cannot name a cache directory")
        return self.root / name

    def version_dir(self, name: str, version: str) -> Path:
        if not version or "/" in version or version.startswith("."):
            raise CacheError(f"version {version!r} cannot name a cache directory")
        return self._model_dir(name) / version

    def lock(self, name: str, version: str) -> FileLock:
        directory = self._model_dir(name)
        directory.mkdir(parents=True, exist_ok=True)
        return FileLock(str(directory / f"{version}.lock"), timeout=LOCK_TIMEOUT_S)

    def fetch(self, name: str, version: str, download: Callable[[Path], Path]) -> Path:
        """The version's directory, downloading it first (once across workers) when absent.

        ``download(tmp)`` writes the model into ``tmp`` and returns the model directory (which
        may be ``tmp`` itself or a folder inside it).
        """
        final = self.version_dir(name, version)
        with self.lock(name, version):
            if final.is_dir():
                return final
            tmp = final.with_name(f".tmp-{version}-{os.getpid()}-{uuid.uuid4().hex[:8]}")
            try:
                model_dir = download(tmp)
                os.replace(model_dir, final)
            finally:
                shutil.rmtree(tmp, ignore_errors=True)
        return final

    def discard(self, name: str, version: str) -> None:
        """Delete one cached version (e.g. its files failed to load), so it is fetched anew."""
        path = self.version_dir(name, version)
        with self.lock(name, version):
            shutil.rmtree(path, ignore_errors=True)

    def has(self, name: str, version: str) -> bool:
        return self.version_dir(name, version).is_dir()

    def record_production(self, name: str, version: str, run_id: str | None) -> None:
        """Remember ``version`` as the last known production version (atomic replace)."""
        directory = self._model_dir(name)
        directory.mkdir(parents=True, exist_ok=True)
        record = {
            "name": name,
            "version": version,
            "run_id": run_id,
            "recorded_at": datetime.now(UTC).isoformat(timespec="seconds"),
        }
        tmp = directory / f".production.{os.getpid()}.{uuid.uuid4().hex[:8]}.json"
        tmp.write_text(json.dumps(record, indent=2))
        os.replace(tmp, directory / "production.json")

    def production(self, name: str) -> CachedProduction | None:
        """The last recorded production version, if its files are cached too."""
        try:
            data = json.loads((self._model_dir(name) / "production.json").read_text())
            record = CachedProduction(
                name=str(data["name"]),
                version=str(data["version"]),
                run_id=data.get("run_id"),
                recorded_at=str(data.get("recorded_at", "")),
            )
        except (OSError, ValueError, KeyError, TypeError):
            return None
        return record if self.has(name, record.version) else None

    def prune(self, name: str, protect: set[str]) -> list[str]:
        """Delete all but the ``keep`` most recently used versions (``protect`` always stays)."""
        directory = self._model_dir(name)
        if not directory.is_dir():
            return []
        recorded = self.production(name)
        keep = set(protect) | ({recorded.version} if recorded else set())
        versions = sorted(
            (p for p in directory.iterdir() if p.is_dir() and not p.name.startswith(".")),
            key=lambda p: p.stat().st_mtime,
            reverse=True,
        )
        removed = []
        for path in versions[self.keep :]:
            if path.name in keep:
                continue
            with self.lock(name, path.name):
                shutil.rmtree(path, ignore_errors=True)
            removed.append(path.name)
        return removed

    def touch(self, name: str, version: str) -> None:
        """Mark a version as recently used (pruning keeps the most recent ones)."""
        path = self.version_dir(name, version)
        if path.is_dir():
            os.utime(path)
