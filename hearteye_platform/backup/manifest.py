"""A backup's ``manifest.json``: what it holds, when it was taken, and the sha256 of every part.

Written last (a backup without one was interrupted) and checked in full before a restore writes
anything. The digests detect corruption and tampering with the parts; they are not a signature:
whoever can rewrite the manifest too can forge a backup, so keep backups where only operators
write.
"""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path
from typing import Any

from hearteye.checksums import sha256_file
from hearteye.errors import first_line
from hearteye_platform.backup.errors import BackupError
from hearteye_platform.backup.objects import INDEX, ObjectEntry, read_index

MANIFEST = "manifest.json"
FORMAT = "hearteye-backup"
FORMAT_VERSION = 1

#: How the parts are consistent with each other (recorded in every manifest).
CONSISTENCY = (
    "Each database is one pg_dump snapshot (its row counts were read in that snapshot). The "
    "platform database is dumped first, then MLflow's: an audit record or analysis names a model "
    "version that exists in the later MLflow dump. The bucket is copied after both dumps: "
    "artifacts and recordings are written before any row points at them and never rewritten, so "
    "every row in the dumps has its object; objects written meanwhile are harmless extras."
)


def part(root: Path, name: str) -> dict[str, Any]:
    """A part's manifest entry: file name, size and sha256."""
    path = root / name
    return {"file": name, "bytes": path.stat().st_size, "sha256": sha256_file(path)}


def write_manifest(root: Path, manifest: dict[str, Any]) -> None:
    tmp = root / (MANIFEST + ".tmp")
    tmp.write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n")
    tmp.replace(root / MANIFEST)


def verify(root: Path) -> tuple[dict[str, Any], list[ObjectEntry]]:
    """Read and check the backup at ``root``: the manifest, every part's sha256, every object's
    content and the counts. Returns the manifest and the object index; raises ``BackupError``
    naming the first problem."""
    path = root / MANIFEST
    if not path.is_file():
        raise BackupError(
            f"{root} is not a complete HeartEye backup: {MANIFEST} is missing "
            "(an interrupted `ml backup` leaves none)"
        )
    try:
        manifest = json.loads(path.read_text())
    except ValueError as exc:
        raise BackupError(f"{path} is not valid JSON: {first_line(exc)}") from exc
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        raise BackupError(f"{path} is not a HeartEye backup manifest")
    if manifest.get("format_version") != FORMAT_VERSION:
        raise BackupError(
            f"{path}: backup format {manifest.get('format_version')}, this HeartEye reads "
            f"{FORMAT_VERSION}"
        )
    try:
        parts = [*manifest["databases"].values(), manifest["objects"]]
        for entry in parts:
            _check_part(root, entry)
        entries = read_index(root / manifest["objects"]["file"])
        expected = {b: v["count"] for b, v in manifest["objects"]["buckets"].items()}
    except (KeyError, TypeError, AttributeError) as exc:
        raise BackupError(f"{path} lacks {first_line(exc)}: not a complete manifest") from exc
    found = Counter(entry.bucket for entry in entries)
    if dict(found) != {b: n for b, n in expected.items() if n}:
        raise BackupError(f"{INDEX} lists {dict(found)} objects, the manifest {expected}")
    for entry in entries:
        file = root / entry.path
        if not file.is_file():
            raise BackupError(f"object s3://{entry.bucket}/{entry.key} is missing ({entry.path})")
        if file.stat().st_size != entry.size or sha256_file(file) != entry.sha256:
            raise BackupError(
                f"object s3://{entry.bucket}/{entry.key} ({entry.path}) does not match its sha256"
            )
    return manifest, entries


def _check_part(root: Path, entry: dict[str, Any]) -> None:
    name = str(entry["file"])
    file = root / name
    if "/" in name or not file.is_file():
        raise BackupError(f"part {name} of the backup is missing")
    if file.stat().st_size != entry["bytes"] or sha256_file(file) != entry["sha256"]:
        raise BackupError(
            f"part {name} does not match its sha256 in {MANIFEST}: corrupt or altered"
        )
