"""EDF, EDF+ and BDF recordings through ``pyedflib``."""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Final

import numpy as np
import numpy.typing as npt

from hearteye.ecgfiles.recording import Limits, Recording, RecordingFileError, finish, volts_factor

SUFFIXES: Final[frozenset[str]] = frozenset({".edf", ".bdf"})


def read_edf(path: Path, limits: Limits) -> Recording:
    """Every voltage signal of the file at the most common sampling rate among them.

    Signals in other units (temperature, position, annotations) and signals at another rate are
    left out; a file without any voltage signal is refused.
    """
    import pyedflib

    try:
        reader = pyedflib.EdfReader(str(path))
    except OSError as exc:
        raise RecordingFileError(
            f"{path.name} is not a readable EDF/EDF+/BDF file ({exc})"
        ) from None
    try:
        n = reader.signals_in_file
        candidates: list[tuple[int, str, float, float]] = []
        for i in range(n):
            factor = volts_factor(reader.getPhysicalDimension(i))
            fs = float(reader.getSampleFrequency(i))
            if factor is None or fs <= 0:
                continue
            candidates.append((i, reader.getLabel(i).strip() or f"signal {i + 1}", fs, factor))
        if not candidates:
            dims = sorted({reader.getPhysicalDimension(i) or "none" for i in range(n)})
            raise RecordingFileError(
                f"{path.name} has no usable signal: no voltage signal (units found: "
                f"{', '.join(dims) or 'no signals'})"
            )
        fs = Counter(c[2] for c in candidates).most_common(1)[0][0]
        leads: list[str] = []
        columns: list[npt.NDArray[np.floating]] = []
        for i, label, rate, factor in candidates:
            if rate != fs:
                continue
            leads.append(label)
            columns.append(np.asarray(reader.readSignal(i), dtype=np.float32) * np.float32(factor))
        lengths = {len(c) for c in columns}
        if len(lengths) > 1:
            shortest = min(lengths)
            columns = [c[:shortest] for c in columns]
    finally:
        reader.close()
    fmt = "bdf" if path.suffix.lower() == ".bdf" else "edf"
    return finish(path.stem, fmt, fs, leads, columns, limits)
