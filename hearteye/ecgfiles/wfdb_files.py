"""WFDB records (``NAME.hea`` + its signal files, optionally ``NAME.atr``) through ``wfdb``."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any, Final

import numpy as np

from hearteye.ecgfiles.recording import (
    Limits,
    Recording,
    RecordingFileError,
    ReferenceBeats,
    finish,
    volts_factor,
)
from hearteye.records import aami_beats

#: Bytes per sample of the WFDB signal formats ``wfdb`` reads without a codec.
BYTES_PER_SAMPLE: Final[dict[str, float]] = {
    "8": 1,
    "16": 2,
    "24": 3,
    "32": 4,
    "61": 2,
    "80": 1,
    "160": 2,
    "212": 1.5,
    "310": 4 / 3,
    "311": 4 / 3,
}
#: FLAC-compressed formats: readable, size not predictable from the header.
COMPRESSED_FORMATS: Final[frozenset[str]] = frozenset({"508", "516", "524"})
SUFFIXES: Final[frozenset[str]] = frozenset({".hea", ".dat", ".atr"})


def read_wfdb(directory: Path, names: list[str], limits: Limits) -> Recording:
    """The record whose files ``names`` (in ``directory``) are; refuses what does not fit."""
    import wfdb

    headers = [n for n in names if n.lower().endswith(".hea")]
    if not headers:
        dats = ", ".join(n for n in names if not n.lower().endswith(".atr")) or names[0]
        raise RecordingFileError(
            f"{dats}: a WFDB signal file needs its header (.hea): upload NAME.hea with NAME.dat"
        )
    if len(headers) > 1:
        raise RecordingFileError(
            f"several WFDB headers ({', '.join(headers)}): upload one record at a time"
        )
    header_name = headers[0]
    record = header_name[: -len(".hea")]
    base = str(directory / record)
    try:
        header = wfdb.rdheader(base)
    except Exception as exc:  # wfdb raises a zoo of types for a bad header
        raise RecordingFileError(f"{header_name} is not a readable WFDB header ({exc})") from None
    if not header.n_sig:
        raise RecordingFileError(f"{header_name} describes no signal")
    files = [str(f) for f in header.file_name]
    missing = sorted({f for f in files if f not in names})
    if missing:
        raise RecordingFileError(
            f"{header_name} names the signal file {', '.join(missing)}, which was not uploaded"
        )
    others = sorted(set(names) - set(files) - {header_name, f"{record}.atr"})
    if others:
        raise RecordingFileError(
            f"{', '.join(others)} does not belong to record {record} (expected {header_name}, "
            f"{', '.join(sorted(set(files)))} and optionally {record}.atr)"
        )
    formats = [str(f) for f in header.fmt]
    unsupported = sorted(set(formats) - set(BYTES_PER_SAMPLE) - COMPRESSED_FORMATS)
    if unsupported:
        raise RecordingFileError(
            f"WFDB signal format {', '.join(unsupported)} is not supported (supported: "
            f"{', '.join(sorted(BYTES_PER_SAMPLE, key=int))})"
        )
    _check_sizes(directory, header, files, formats)
    try:
        rec = wfdb.rdrecord(base, return_res=32)
    except Exception as exc:
        raise RecordingFileError(f"the signal of record {record} cannot be read ({exc})") from None
    signal = rec.p_signal
    if signal is None or signal.ndim != 2 or signal.shape[0] == 0:
        raise RecordingFileError(f"record {record} holds no samples")
    leads, columns = [], []
    for i, lead in enumerate(rec.sig_name):
        factor = volts_factor(rec.units[i] if rec.units else None)
        if factor is None:
            continue  # not a voltage (e.g. a blood-pressure channel)
        leads.append(str(lead))
        columns.append(np.asarray(signal[:, i], dtype=np.float32) * np.float32(factor))
    if not leads:
        raise RecordingFileError(f"record {record} has no voltage signal (units: {rec.units})")
    reference = None
    if f"{record}.atr" in names:
        reference = _annotations(directory, record)
    return finish(record, "wfdb", float(rec.fs), leads, columns, limits, reference)


def _check_sizes(directory: Path, header: Any, files: list[str], formats: list[str]) -> None:
    """A ``.dat`` whose size disagrees with the header's length fails here, with both numbers."""
    sig_len = int(header.sig_len or 0)
    if not sig_len:
        return
    spf = list(header.samps_per_frame or [1] * len(files))
    offsets = list(header.byte_offset or [None] * len(files))
    for name in sorted(set(files)):
        idx = [i for i, f in enumerate(files) if f == name]
        if any(formats[i] in COMPRESSED_FORMATS for i in idx):
            continue
        frame = sum(BYTES_PER_SAMPLE[formats[i]] * int(spf[i] or 1) for i in idx)
        offset = int(offsets[idx[0]] or 0)
        expected = offset + math.ceil(sig_len * frame)
        actual = (directory / name).stat().st_size
        if actual < expected or actual > expected + math.ceil(frame) + 1:
            held = int((actual - offset) / frame) if frame else 0
            raise RecordingFileError(
                f"the header says {sig_len} samples per signal, but {name} holds {held} "
                f"({actual} bytes, {expected} expected): the header and the data disagree"
            )


def _annotations(directory: Path, record: str) -> ReferenceBeats:
    import wfdb

    path = directory / f"{record}.atr"
    if path.read_bytes()[-2:] != b"\x00\x00":
        raise RecordingFileError(f"{path.name} is truncated (no end-of-file marker)")
    try:
        ann = wfdb.rdann(str(directory / record), "atr")
    except Exception as exc:
        raise RecordingFileError(f"{path.name} is not a readable annotation file ({exc})") from None
    samples, labels, symbols = aami_beats(ann.sample, list(ann.symbol))
    return ReferenceBeats(samples=samples, labels=labels, symbols=symbols)
