"""SHA-256 checksums of the database files: verification against a ``sha256sum`` list, and digests."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path

from hearteye.errors import ChecksumError

CHUNK = 1 << 20


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        while chunk := fh.read(CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def read_checksum_list(path: Path) -> dict[str, str]:
    """Parse a ``sha256sum``-format file (``<hex>  <name>``, optional ``*`` binary marker)."""
    if not path.is_file():
        raise ChecksumError(f"checksum list {path} not found")
    entries: dict[str, str] = {}
    for lineno, line in enumerate(path.read_text().splitlines(), start=1):
        if not line.strip() or line.startswith("#"):
            continue
        parts = line.split(maxsplit=1)
        if len(parts) != 2 or len(parts[0]) != 64:
            raise ChecksumError(f"{path}:{lineno}: not a sha256sum line: {line!r}")
        entries[parts[1].lstrip("*").strip()] = parts[0].lower()
    if not entries:
        raise ChecksumError(f"checksum list {path} is empty")
    return entries


@dataclass
class VerifyReport:
    """Outcome of checking a directory against a checksum list."""

    checked: int = 0
    missing: list[str] = field(default_factory=list)
    altered: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.missing and not self.altered


def verify_directory(directory: Path, checksum_file: Path) -> VerifyReport:
    """Check every file listed in ``checksum_file`` exists in ``directory`` with the listed hash."""
    report = VerifyReport()
    for name, expected in sorted(read_checksum_list(checksum_file).items()):
        path = directory / name
        report.checked += 1
        if not path.is_file():
            report.missing.append(name)
        elif sha256_file(path) != expected:
            report.altered.append(name)
    return report


def default_checksum_file(mitdb_dir: Path) -> Path | None:
    """The list shipped with the data: ``<dir>/SHA256SUMS(.txt)`` or a sibling ``<dir>.SHA256SUMS``."""
    for candidate in (
        mitdb_dir / "SHA256SUMS.txt",
        mitdb_dir / "SHA256SUMS",
        mitdb_dir.with_name(mitdb_dir.name + ".SHA256SUMS"),
    ):
        if candidate.is_file():
            return candidate
    return None
