"""Reading MIT-BIH records and their reference beat annotations with ``wfdb``."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt

from hearteye.errors import DataError, RecordError
from hearteye.labels import AAMI_CLASSES, AAMI_MAP

#: The lead models are trained on. 102 and 104 lack it (both paced, excluded).
PREFERRED_LEAD = "MLII"
RECORD_SUFFIXES = (".hea", ".dat", ".atr")

_LABEL_INDEX = {label: i for i, label in enumerate(AAMI_CLASSES)}


@dataclass(frozen=True)
class Record:
    """One lead of a record with its AAMI-labelled reference beats."""

    name: str
    fs: float
    lead: str
    signal: npt.NDArray[np.float64]  # mV
    beat_samples: npt.NDArray[np.int64]  # reference R-peak positions (samples)
    beat_labels: npt.NDArray[np.int8]  # index into AAMI_CLASSES

    @property
    def duration_s(self) -> float:
        return len(self.signal) / self.fs


def record_files(mitdb_dir: Path, name: str, annotator: str = "atr") -> list[Path]:
    """The three files a record consists of: header, signal and the ``annotator``'s beats."""
    return [mitdb_dir / f"{name}{suffix}" for suffix in (".hea", ".dat", f".{annotator}")]


def check_data_dir(mitdb_dir: Path, names: list[str] | tuple[str, ...]) -> None:
    """Fail with one message naming every missing file, before any work starts."""
    if not mitdb_dir.is_dir():
        raise DataError(
            f"MIT-BIH directory {mitdb_dir} does not exist: set HEARTEYE_MITDB_DIR to the folder "
            "holding the records, or run `ml data fetch` to download them"
        )
    missing = [p.name for name in names for p in record_files(mitdb_dir, name) if not p.is_file()]
    if missing:
        shown = ", ".join(missing[:12]) + (
            f" and {len(missing) - 12} more" if len(missing) > 12 else ""
        )
        raise DataError(f"MIT-BIH directory {mitdb_dir} is incomplete: missing {shown}")


def load_record(
    mitdb_dir: Path, name: str, lead: str | None = PREFERRED_LEAD, annotator: str = "atr"
) -> Record:
    """Read one lead of record ``name`` and its reference beats (AAMI-labelled, non-beats dropped).

    ``lead=None`` takes MLII when the record has it, else its first lead. ``annotator`` names the
    annotation file (``NAME.atr`` by default). Raises :class:`RecordError` naming the record for
    missing, truncated or corrupt files.
    """
    import wfdb  # heavy import kept out of module import

    for path in record_files(mitdb_dir, name, annotator):
        if not path.is_file():
            raise RecordError(name, f"missing file {path}")
    base = str(mitdb_dir / name)
    try:
        header = wfdb.rdheader(base)
    except Exception as exc:  # wfdb raises a zoo of types for a bad header
        raise RecordError(name, f"unreadable header {name}.hea ({exc})") from exc
    _check_signal_file_size(mitdb_dir, name, header)
    channel = _pick_channel(name, list(header.sig_name or []), lead)
    try:
        rec = wfdb.rdrecord(base, channels=[channel])
    except Exception as exc:
        raise RecordError(name, f"corrupt signal file {name}.dat ({exc})") from exc
    signal = np.asarray(rec.p_signal[:, 0], dtype=np.float64)
    if len(signal) != header.sig_len:
        raise RecordError(name, f"signal file truncated: {len(signal)} of {header.sig_len} samples")
    if not np.all(np.isfinite(signal)):
        bad = int(np.count_nonzero(~np.isfinite(signal)))
        raise RecordError(
            name, f"{bad} invalid (NaN/Inf) samples in lead {header.sig_name[channel]}"
        )

    atr = mitdb_dir / f"{name}.{annotator}"
    if atr.read_bytes()[-2:] != b"\x00\x00":
        raise RecordError(name, f"annotation file {atr.name} is truncated (no end-of-file marker)")
    try:
        ann = wfdb.rdann(base, annotator)
    except Exception as exc:
        raise RecordError(name, f"corrupt annotation file {atr.name} ({exc})") from exc
    beat_samples, beat_labels, _ = aami_beats(ann.sample, ann.symbol)
    if len(beat_samples) and (beat_samples.min() < 0 or beat_samples.max() >= len(signal)):
        raise RecordError(name, "annotations point outside the signal")
    return Record(
        name=name,
        fs=float(header.fs),
        lead=str(header.sig_name[channel]),
        signal=signal,
        beat_samples=beat_samples,
        beat_labels=beat_labels,
    )


def aami_beats(
    samples: npt.ArrayLike, symbols: list[str]
) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.int8], tuple[str, ...]]:
    """The beat annotations among ``samples``/``symbols`` (MIT-BIH symbols): their positions,
    AAMI class indices and symbols; rhythm, noise and comment annotations are dropped."""
    positions = np.asarray(samples, dtype=np.int64)
    keep = np.fromiter((s in AAMI_MAP for s in symbols), dtype=bool, count=len(symbols))
    kept = tuple(s for s, k in zip(symbols, keep, strict=True) if k)
    labels = np.fromiter((_LABEL_INDEX[AAMI_MAP[s]] for s in kept), dtype=np.int8, count=len(kept))
    return positions[keep], labels, kept


def _pick_channel(name: str, sig_names: list[str], lead: str | None) -> int:
    if lead is None:
        return sig_names.index(PREFERRED_LEAD) if PREFERRED_LEAD in sig_names else 0
    if lead in sig_names:
        return sig_names.index(lead)
    raise RecordError(name, f"has no {lead} lead (leads: {', '.join(sig_names) or 'none'})")


def _check_signal_file_size(mitdb_dir: Path, name: str, header: object) -> None:
    """Catch a truncated ``.dat`` before wfdb fails obscurely (formats 212 and 16)."""
    fmt = (getattr(header, "fmt", None) or [None])[0]
    n_sig = int(getattr(header, "n_sig", 0) or 0)
    sig_len = int(getattr(header, "sig_len", 0) or 0)
    bytes_per_sample = {"212": 1.5, "16": 2.0}.get(str(fmt))
    if bytes_per_sample is None or not n_sig or not sig_len:
        return
    expected = int(np.ceil(sig_len * n_sig * bytes_per_sample))
    actual = (mitdb_dir / f"{name}.dat").stat().st_size
    if actual < expected:
        raise RecordError(name, f"signal file {name}.dat truncated: {actual} of {expected} bytes")
