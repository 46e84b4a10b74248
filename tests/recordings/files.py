"""Real MIT-BIH records rewritten in each upload format, in temporary folders (never committed)."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import numpy.typing as npt

from hearteye.ecgfiles import Limits

LIMITS = Limits(min_fs=100.0, max_fs=1000.0, min_duration_s=10.0, max_duration_s=24 * 3600.0)


def mitdb_signal(mitdb: Path, record: str, seconds: float) -> tuple[npt.NDArray[np.float64], float]:
    """The first ``seconds`` of both leads of a MIT-BIH record (mV) and its rate."""
    import wfdb

    rec = wfdb.rdrecord(str(mitdb / record), sampto=int(seconds * 360))
    return np.asarray(rec.p_signal, np.float64), float(rec.fs)


def copy_record(mitdb: Path, record: str, out: Path, atr: bool = True) -> list[str]:
    names = [f"{record}.hea", f"{record}.dat"] + ([f"{record}.atr"] if atr else [])
    for name in names:
        shutil.copy(mitdb / name, out / name)
    return names


def write_wfdb(
    mitdb: Path, record: str, fmt: str, out: Path, seconds: float = 30.0, units: str = "mV"
) -> list[str]:
    """Record ``record``'s first ``seconds`` re-written in WFDB format ``fmt``."""
    import wfdb

    signal, fs = mitdb_signal(mitdb, record, seconds)
    name = f"r{record}f{fmt}"
    scale = 1000.0 if units == "uV" else 1.0
    gain = {"80": 40.0, "212": 200.0, "16": 1000.0}[fmt] / scale
    wfdb.wrsamp(
        name,
        fs=fs,
        units=[units, units],
        sig_name=["MLII", "V1"],
        p_signal=signal * scale,
        fmt=[fmt, fmt],
        adc_gain=[gain, gain],
        baseline=[0, 0],
        write_dir=str(out),
    )
    return [f"{name}.hea", f"{name}.dat"]


def write_edf(
    mitdb: Path, record: str, path: Path, seconds: float = 30.0, bdf: bool = False
) -> None:
    import pyedflib

    signal, fs = mitdb_signal(mitdb, record, seconds)
    kind = pyedflib.FILETYPE_BDFPLUS if bdf else pyedflib.FILETYPE_EDFPLUS
    writer = pyedflib.EdfWriter(str(path), 2, file_type=kind)
    try:
        headers = []
        for label in ("ECG MLII", "ECG V1"):
            headers.append(
                {
                    "label": label,
                    "dimension": "uV",
                    "sample_frequency": fs,
                    "physical_min": -10000.0,
                    "physical_max": 10000.0,
                    "digital_min": -8388608 if bdf else -32768,
                    "digital_max": 8388607 if bdf else 32767,
                }
            )
        writer.setSignalHeaders(headers)
        writer.writeSamples([np.ascontiguousarray(signal[:, i] * 1000.0) for i in range(2)])
    finally:
        writer.close()


def write_csv(
    mitdb: Path, record: str, path: Path, seconds: float = 30.0, time_column: bool = True
) -> None:
    signal, fs = mitdb_signal(mitdb, record, seconds)
    lines = ["time_s,MLII,V1" if time_column else "MLII,V1"]
    for i, row in enumerate(signal):
        values = f"{row[0]:.3f},{row[1]:.3f}"
        lines.append(f"{i / fs:.6f},{values}" if time_column else values)
    path.write_text("\n".join(lines) + "\n")
