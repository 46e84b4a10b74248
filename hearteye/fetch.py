"""Downloading the MIT-BIH Arrhythmia Database from PhysioNet with ``wfdb``."""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

from hearteye.errors import DownloadError
from hearteye.labels import ALL_RECORDS
from hearteye.records import RECORD_SUFFIXES

PHYSIONET_DB = "mitdb"
PHYSIONET_VERSION = "1.0.0"
CHECKSUM_FILE = "SHA256SUMS.txt"


def fetch_mitdb(destination: Path, records: tuple[str, ...] = ALL_RECORDS) -> Path:
    """Download the records (and PhysioNet's checksum list) into ``destination``.

    Files land in a temporary folder next to ``destination`` and are moved in only when every
    download succeeded, so an interrupted or offline run leaves nothing half-written.
    """
    import wfdb

    destination.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".mitdb-download-", dir=destination.parent))
    try:
        try:
            wfdb.dl_database(PHYSIONET_DB, str(staging), records=list(records), annotators=["atr"])
            wfdb.io.download.dl_files(
                f"{PHYSIONET_DB}/{PHYSIONET_VERSION}", str(staging), [CHECKSUM_FILE]
            )
        except Exception as exc:  # requests/urllib errors, HTTP errors, wfdb's own
            raise DownloadError(
                f"could not download MIT-BIH from PhysioNet ({type(exc).__name__}: {exc}). "
                "Check the internet connection, or point HEARTEYE_MITDB_DIR at an existing copy."
            ) from exc
        missing = [
            f"{r}{s}"
            for r in records
            for s in RECORD_SUFFIXES
            if not (staging / f"{r}{s}").is_file()
        ]
        if missing:
            raise DownloadError(f"download incomplete: missing {', '.join(missing[:10])}")
        destination.mkdir(parents=True, exist_ok=True)
        for path in staging.iterdir():
            path.replace(destination / path.name)
        return destination
    finally:
        shutil.rmtree(staging, ignore_errors=True)
