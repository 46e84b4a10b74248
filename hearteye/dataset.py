"""The dataset builder: (records, config) -> beat windows, features, labels, record ids and a digest.

Each record's beats are cached under ``<cache>/beats/`` keyed by the record files' checksums and the
preprocessing config; files are written to a temporary name and renamed, so a crash never leaves a
half-written cache entry. The dataset digest (record checksums + config + code version) is the
lineage MLflow records for every training run.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from hearteye.checksums import sha256_file
from hearteye.labels import AAMI_CLASSES, SPLITS
from hearteye.preprocess.beats import FEATURE_NAMES, Beats
from hearteye.preprocess.config import PreprocessConfig
from hearteye.preprocess.pipeline import preprocess
from hearteye.records import check_data_dir, load_record, record_files

#: Bump when the builder's output changes for identical records and config.
BUILDER_VERSION = 2

ProgressCallback = Callable[[str], None]


@dataclass(frozen=True)
class BeatDataset:
    """All beats of a set of records, in record order."""

    windows: npt.NDArray[np.float32]  # (n, sequence_length)
    templates: npt.NDArray[np.float32]  # (n, sequence_length): each beat's reference beat
    features: npt.NDArray[np.float32]  # (n, len(FEATURE_NAMES))
    labels: npt.NDArray[np.int8]  # index into AAMI_CLASSES
    records: npt.NDArray[np.str_]  # record name per beat
    samples: npt.NDArray[np.int64]  # R-peak position (annotation) per beat
    digest: str
    config: PreprocessConfig

    def __len__(self) -> int:
        return len(self.labels)

    @property
    def record_names(self) -> list[str]:
        return list(dict.fromkeys(self.records.tolist()))

    def class_counts(self) -> dict[str, int]:
        counts = np.bincount(self.labels, minlength=len(AAMI_CLASSES))
        return {label: int(c) for label, c in zip(AAMI_CLASSES, counts, strict=True)}

    def select(self, mask: npt.NDArray[np.bool_]) -> BeatDataset:
        """A subset (same digest: it names the source dataset, not the subset)."""
        return BeatDataset(
            windows=self.windows[mask],
            templates=self.templates[mask],
            features=self.features[mask],
            labels=self.labels[mask],
            records=self.records[mask],
            samples=self.samples[mask],
            digest=self.digest,
            config=self.config,
        )

    def beats(self) -> Beats:
        """The model inputs (positions are the annotated R peaks, in the records' rate)."""
        return Beats(
            peaks=self.samples,
            windows=self.windows,
            templates=self.templates,
            features=self.features,
        )

    def for_records(self, names: Sequence[str]) -> BeatDataset:
        return self.select(np.isin(self.records, list(names)))


def record_digest(mitdb_dir: Path, name: str) -> str:
    """SHA-256 over a record's three files."""
    digest = hashlib.sha256()
    for path in record_files(mitdb_dir, name):
        digest.update(path.name.encode())
        digest.update(bytes.fromhex(sha256_file(path)))
    return digest.hexdigest()


def dataset_digest(record_digests: dict[str, str], config: PreprocessConfig) -> str:
    """Content digest of (record checksums + preprocessing config + builder version)."""
    blob = json.dumps(
        {"records": record_digests, "config": config.to_dict(), "builder": BUILDER_VERSION},
        sort_keys=True,
    ).encode()
    return hashlib.sha256(blob).hexdigest()


def build_dataset(
    mitdb_dir: Path,
    records: Sequence[str],
    config: PreprocessConfig,
    cache_dir: Path | None = None,
    progress: ProgressCallback | None = None,
) -> BeatDataset:
    """Load (from cache or by preprocessing) every beat of ``records``.

    Raises :class:`~hearteye.errors.DataError` naming the directory or record for missing,
    truncated or corrupt files, before anything is written.
    """
    names = list(dict.fromkeys(records))
    check_data_dir(mitdb_dir, names)
    digests = {name: record_digest(mitdb_dir, name) for name in names}
    parts = []
    for name in names:
        if progress is not None:
            progress(name)
        parts.append(_record_beats(mitdb_dir, name, digests[name], config, cache_dir))
    return BeatDataset(
        windows=np.concatenate([p["windows"] for p in parts]),
        templates=np.concatenate([p["templates"] for p in parts]),
        features=np.concatenate([p["features"] for p in parts]),
        labels=np.concatenate([p["labels"] for p in parts]),
        records=np.concatenate(
            [np.full(len(p["labels"]), n) for n, p in zip(names, parts, strict=True)]
        ),
        samples=np.concatenate([p["samples"] for p in parts]),
        digest=dataset_digest(digests, config),
        config=config,
    )


def build_split(
    mitdb_dir: Path,
    split: str,
    config: PreprocessConfig,
    cache_dir: Path | None = None,
    progress: ProgressCallback | None = None,
) -> BeatDataset:
    """All beats of the named split (``DS1`` or ``DS2``)."""
    if split not in SPLITS:
        raise ValueError(f"unknown split {split!r}; expected one of {sorted(SPLITS)}")
    return build_dataset(mitdb_dir, SPLITS[split], config, cache_dir, progress)


def _record_beats(
    mitdb_dir: Path, name: str, digest: str, config: PreprocessConfig, cache_dir: Path | None
) -> dict[str, np.ndarray]:
    path = None
    if cache_dir is not None:
        key = hashlib.sha256(f"{digest}:{config.digest()}:{BUILDER_VERSION}".encode()).hexdigest()
        path = cache_dir / "beats" / f"{name}-{key[:24]}.npz"
        if path.is_file():
            try:
                with np.load(path) as data:
                    return {k: data[k] for k in data.files}
            except (OSError, ValueError):
                path.unlink(missing_ok=True)  # unreadable entry: rebuild it
    record = load_record(mitdb_dir, name)
    strip = preprocess(record.signal, record.fs, config, r_peaks=record.beat_samples)
    arrays: dict[str, np.ndarray] = {
        "windows": strip.beats.windows,
        "templates": strip.beats.templates,
        "features": strip.beats.features,
        "labels": record.beat_labels,
        "samples": record.beat_samples,
    }
    assert arrays["features"].shape[1] == len(FEATURE_NAMES)
    if path is not None:
        _atomic_save(path, arrays)
    return arrays


def _atomic_save(path: Path, arrays: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.stem}-", suffix=".npz.tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            np.savez(fh, allow_pickle=False, **arrays)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
