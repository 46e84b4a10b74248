"""Uploads in, decoded signals and analysis results out: the blob store, the rows, a local cache.

Raw files go to the blob store under ``recordings/<file sha256>``; the decoded signal (every lead,
float32 mV) and the reference beats are cached per worker under ``recordings_cache_dir/<upload
sha256>/`` and read memory-mapped, rebuilt from the raw files when missing (another worker, a
restarted container). An upload that fails any check leaves nothing behind.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import re
import shutil
import tempfile
import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

import numpy as np
import numpy.typing as npt

from hearteye.ecgfiles import Limits, Recording, RecordingFileError, read_recording
from hearteye.ecgfiles.recording import choose_lead
from hearteye.holter import BeatTable
from hearteye_platform.db.models import AnalysisRow, RecordingRow, utcnow
from hearteye_platform.recordings import BlobStore, LocalBlobStore, RecordingStore, S3BlobStore
from serving.settings import ServingSettings

logger = logging.getLogger("serving.recordings")

#: What an uploaded file may be called (no folders, no hidden files).
FILE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._ ()+-]{0,127}$")
CHUNK = 1024 * 1024


class UploadTooLargeError(RecordingFileError):
    """The upload is over ``recordings_max_upload_bytes`` (413)."""


@dataclass(frozen=True)
class Upload:
    """One uploaded file: its name as the client gave it, and a readable stream."""

    name: str
    stream: BinaryIO


@dataclass(frozen=True)
class Decoded:
    """A recording's decoded leads (memory-mapped) and reference beats."""

    leads: tuple[str, ...]
    signals: npt.NDArray[np.float32]  # (n_leads, n_samples)
    reference_samples: npt.NDArray[np.int64] | None
    reference_labels: npt.NDArray[np.int8] | None
    reference_symbols: list[str] | None

    def lead(self, name: str) -> npt.NDArray[np.float32]:
        return self.signals[self.leads.index(name)]


def file_key(digest: str) -> str:
    return f"recordings/{digest}"


def beats_key(analysis_id: str) -> str:
    return f"analyses/{analysis_id}.npz"


def new_id() -> str:
    return uuid.uuid4().hex


def make_blob_store(settings: ServingSettings) -> BlobStore:
    if settings.recordings_s3_bucket:
        return S3BlobStore(settings.recordings_s3_bucket, settings.recordings_s3_endpoint)
    return LocalBlobStore(settings.recordings_dir)


class RecordingService:
    """One per worker process (built by the lifespan)."""

    def __init__(self, settings: ServingSettings, store: RecordingStore, blobs: BlobStore) -> None:
        self.settings = settings
        self.store = store
        self.blobs = blobs
        self.cache_dir = settings.recordings_cache_dir
        self.limits = Limits(
            min_fs=settings.min_fs_hz,
            max_fs=settings.max_fs_hz,
            min_duration_s=settings.recordings_min_duration_s,
            max_duration_s=settings.recordings_max_duration_s,
        )

    # -- upload --------------------------------------------------------------------------------

    def ingest(
        self,
        owner: str,
        uploads: list[Upload],
        *,
        name: str | None = None,
        fs: float | None = None,
        lead: str | None = None,
    ) -> RecordingRow:
        """Check, store and register an upload; raises RecordingFileError (nothing stored)."""
        names = [u.name for u in uploads]
        _check_names(names)
        self.cache_dir.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(dir=self.cache_dir, prefix=".upload-") as tmp:
            folder = Path(tmp)
            files, total = [], 0
            for upload in uploads:
                digest, size = self._save(upload, folder / upload.name, total)
                total += size
                files.append({"name": upload.name, "sha256": digest, "size_bytes": size})
            recording = read_recording(folder, names, self.limits, fs=fs)
            default_lead = choose_lead(recording.leads, lead)
            upload_digest = _upload_digest(files)
            created: list[str] = []
            try:
                for entry in files:
                    key = file_key(str(entry["sha256"]))
                    if not self.blobs.exists(key):
                        self.blobs.put_file(key, folder / str(entry["name"]))
                        created.append(key)
                self._cache(upload_digest, recording)
                row = RecordingRow(
                    id=new_id(),
                    owner=owner,
                    name=(name or recording.name).strip()[:255] or recording.name,
                    format=recording.format,
                    fs=recording.fs,
                    n_samples=recording.n_samples,
                    leads=list(recording.leads),
                    default_lead=default_lead,
                    n_reference_beats=len(recording.reference) if recording.reference else None,
                    sha256=upload_digest,
                    size_bytes=total,
                    files=files,
                    created_at=utcnow(),
                )
                self.store.add_recording(row)
            except BaseException:
                for key in created:  # nothing half-stored
                    try:
                        self.blobs.delete(key)
                    except Exception:  # the original error matters more
                        logger.exception("could not remove %s after a failed upload", key)
                raise
        logger.info("recording %s stored (%s, %d bytes)", row.id, row.format, total)
        return row

    def _save(self, upload: Upload, path: Path, before: int) -> tuple[str, int]:
        limit = self.settings.recordings_max_upload_bytes
        digest = hashlib.sha256()
        size = 0
        with path.open("wb") as out:
            while chunk := upload.stream.read(CHUNK):
                size += len(chunk)
                if before + size > limit:
                    raise UploadTooLargeError(
                        f"the upload exceeds the limit of {limit} bytes "
                        "(HEARTEYE_RECORDINGS_MAX_UPLOAD_BYTES)"
                    )
                digest.update(chunk)
                out.write(chunk)
        if size == 0:
            raise RecordingFileError(f"{upload.name} is empty")
        return digest.hexdigest(), size

    # -- reading back --------------------------------------------------------------------------

    def decoded(self, row: RecordingRow) -> Decoded:
        """The recording's decoded leads and reference, from this worker's cache or rebuilt."""
        folder = self.cache_dir / row.sha256
        if not (folder / "signals.npy").is_file():
            self._rebuild(row)
        meta = json.loads((folder / "meta.json").read_text())
        signals = np.load(folder / "signals.npy", mmap_mode="r")
        samples = labels = symbols = None
        if (folder / "reference.npz").is_file():
            with np.load(folder / "reference.npz") as ref:
                samples = ref["samples"].astype(np.int64)
                labels = ref["labels"].astype(np.int8)
            symbols = list(meta.get("symbols") or [])
        return Decoded(tuple(meta["leads"]), signals, samples, labels, symbols)

    def _rebuild(self, row: RecordingRow) -> None:
        self.cache_dir.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(dir=self.cache_dir, prefix=".fetch-") as tmp:
            folder = Path(tmp)
            for entry in row.files:
                self.blobs.get_file(file_key(entry["sha256"]), folder / entry["name"])
            fs = row.fs if row.format == "csv" else None
            recording = read_recording(folder, [f["name"] for f in row.files], self.limits, fs=fs)
            self._cache(row.sha256, recording)

    def _cache(self, digest: str, recording: Recording) -> None:
        folder = self.cache_dir / digest
        if (folder / "signals.npy").is_file():
            return
        tmp = Path(tempfile.mkdtemp(dir=self.cache_dir, prefix=".cache-"))
        try:
            np.save(tmp / "signals.npy", recording.signals)
            meta: dict[str, object] = {"leads": list(recording.leads), "fs": recording.fs}
            if recording.reference is not None:
                np.savez(
                    tmp / "reference.npz",
                    samples=recording.reference.samples,
                    labels=recording.reference.labels,
                )
                meta["symbols"] = list(recording.reference.symbols)
            (tmp / "meta.json").write_text(json.dumps(meta))
            with contextlib.suppress(OSError):  # another thread or worker cached it first
                os.rename(tmp, folder)
        finally:
            if tmp.exists():
                shutil.rmtree(tmp, ignore_errors=True)

    def beats(self, analysis: AnalysisRow) -> BeatTable:
        """An analysis's beats (cached next to the recordings)."""
        assert analysis.beats_key is not None
        path = self.cache_dir / "analyses" / f"{analysis.id}.npz"
        if not path.is_file():
            path.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-")
            os.close(fd)
            try:
                self.blobs.get_file(analysis.beats_key, Path(tmp))
                os.replace(tmp, path)
            finally:
                Path(tmp).unlink(missing_ok=True)
        return BeatTable.load(path)

    def store_beats(self, analysis_id: str, table: BeatTable) -> str:
        key = beats_key(analysis_id)
        folder = self.cache_dir / "analyses"
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / f"{analysis_id}.npz"
        tmp = folder / f".{analysis_id}.tmp"
        table.save(tmp)
        os.replace(tmp, path)
        self.blobs.put_file(key, path)
        return key

    # -- deleting ------------------------------------------------------------------------------

    def delete(self, recording_id: str, owner: str | None) -> None:
        row = self.store.get_recording(recording_id, owner)
        unused, beats = self.store.delete_recording(recording_id, owner)
        for key in [file_key(d) for d in unused] + beats:
            try:
                self.blobs.delete(key)
            except Exception:
                logger.exception("could not remove %s", key)
        for key in beats:
            (self.cache_dir / "analyses" / Path(key).name).unlink(missing_ok=True)
        if unused:
            shutil.rmtree(self.cache_dir / row.sha256, ignore_errors=True)


def _check_names(names: Iterable[str]) -> None:
    seen = set()
    for name in names:
        if not FILE_NAME.fullmatch(name or ""):
            raise RecordingFileError(
                f"file name {name!r} is not accepted: letters, digits, '.', '_', '-', at most 128 "
                "characters, no folders"
            )
        if name in seen:
            raise RecordingFileError(f"{name} was uploaded twice")
        seen.add(name)


def _upload_digest(files: list[dict[str, object]]) -> str:
    if len(files) == 1:
        return str(files[0]["sha256"])
    digest = hashlib.sha256()
    for entry in sorted(files, key=lambda f: str(f["name"])):
        digest.update(f"{entry['name']}\0{entry['sha256']}\n".encode())
    return digest.hexdigest()
