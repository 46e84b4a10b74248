"""``ml backup``: the databases, then the bucket, into one self-describing directory or tar.

Written under a temporary name next to the destination and renamed into place once the manifest
is written: a destination that exists is always a complete backup.
"""

from __future__ import annotations

import shutil
import tarfile
import tempfile
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from hearteye_platform.backup import postgres
from hearteye_platform.backup.errors import BackupError
from hearteye_platform.backup.manifest import (
    CONSISTENCY,
    FORMAT,
    FORMAT_VERSION,
    part,
    write_manifest,
)
from hearteye_platform.backup.objects import INDEX, copy_bucket, object_count, write_index
from hearteye_platform.backup.stores import DUMP_ORDER, Stores
from hearteye_platform.db.config import redact


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds")


def create_backup(stores: Stores, dest: Path, say: Callable[[str], None]) -> dict[str, Any]:
    """Write a backup of ``stores`` to ``dest`` (a directory, or a tar when it ends in ``.tar``);
    returns its manifest. Nothing is left at ``dest`` when it fails."""
    from importlib.metadata import version

    if dest.exists():
        raise BackupError(f"{dest} exists: choose a new destination")
    if not dest.parent.is_dir():
        raise BackupError(f"{dest.parent} is not a directory")
    postgres.tool("pg_dump")  # before anything is written
    client = stores.s3()
    for bucket in stores.buckets:
        object_count(client, bucket)  # reachable, credentials accepted
    work = Path(tempfile.mkdtemp(prefix=f".{dest.name}.partial-", dir=dest.parent))
    try:
        started = _now()
        databases = {}
        for name in (n for n in DUMP_ORDER if n in stores.databases):
            url = stores.databases[name]
            say(f"dumping the {name} database {redact(url)}")
            info = postgres.dump(url, name, work / f"{name}.dump")
            databases[name] = {
                **part(work, f"{name}.dump"),
                **postgres.describe(info),
                "url": redact(url),
            }
        dumped = _now()
        entries = []
        for bucket in stores.buckets:
            say(f"copying s3://{bucket} at {stores.s3_endpoint}")
            entries += copy_bucket(client, bucket, work)
        write_index(entries, work / INDEX)
        manifest = {
            "format": FORMAT,
            "format_version": FORMAT_VERSION,
            "hearteye_version": version("hearteye"),
            "mlflow_version": version("mlflow"),
            "started_at": started,
            "databases_dumped_at": dumped,
            "finished_at": _now(),
            "consistency": CONSISTENCY,
            "databases": databases,
            "objects": {
                **part(work, INDEX),
                "endpoint": stores.s3_endpoint,
                "buckets": {
                    bucket: {
                        "count": sum(1 for e in entries if e.bucket == bucket),
                        "bytes": sum(e.size for e in entries if e.bucket == bucket),
                    }
                    for bucket in stores.buckets
                },
            },
        }
        write_manifest(work, manifest)
        if dest.suffix == ".tar":
            _write_tar(work, dest)
            shutil.rmtree(work)
        else:
            work.rename(dest)
    except BaseException:
        shutil.rmtree(work, ignore_errors=True)
        raise
    return manifest


def _write_tar(work: Path, dest: Path) -> None:
    tmp = work.with_suffix(".tar")
    try:
        with tarfile.open(tmp, "w") as tar:
            for path in sorted(work.rglob("*")):
                tar.add(path, arcname=str(path.relative_to(work)), recursive=False)
        tmp.rename(dest)
    finally:
        tmp.unlink(missing_ok=True)
