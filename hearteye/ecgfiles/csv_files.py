"""CSV with a header: one column per lead in mV, the rate from a time column or the caller."""

from __future__ import annotations

from pathlib import Path
from typing import Final

import numpy as np
import numpy.typing as npt

from hearteye.ecgfiles.recording import Limits, Recording, RecordingFileError, finish

SUFFIXES: Final[frozenset[str]] = frozenset({".csv"})
#: Header names of a time column (seconds), compared in lower case.
TIME_COLUMNS: Final[frozenset[str]] = frozenset({"time", "time_s", "time (s)", "t", "seconds", "s"})
#: How far the time column's steps may stray from their median before it counts as uneven.
TIME_JITTER: Final[float] = 0.01


def read_csv(path: Path, limits: Limits, fs: float | None = None) -> Recording:
    """The leads of a CSV file; ``fs`` is needed when the file has no time column."""
    import pandas as pd

    try:
        frame = pd.read_csv(path, engine="c", skipinitialspace=True)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
        raise RecordingFileError(f"{path.name} is not a readable CSV file ({exc})") from None
    names = [str(c).strip() for c in frame.columns]
    if not names or all(_is_number(n) for n in names):
        raise RecordingFileError(
            f"{path.name} has no header line: the first line must name the columns "
            "(e.g. time_s,MLII,V1 or MLII,V1)"
        )
    columns: list[npt.NDArray[np.float64]] = []
    for name, series in zip(names, (frame[c] for c in frame.columns), strict=True):
        values = pd.to_numeric(series, errors="coerce").to_numpy(dtype=np.float64)
        bad = np.isnan(values) & series.notna().to_numpy()
        if bad.any():
            row = int(np.argmax(bad))
            raise RecordingFileError(
                f"{path.name}, column {name!r}, line {row + 2}: {str(series.iloc[row])!r} "
                "is not a number"
            )
        columns.append(values)
    time_index = next((i for i, n in enumerate(names) if n.lower() in TIME_COLUMNS), None)
    if time_index is not None:
        rate = _rate_from_time(path.name, names[time_index], columns[time_index])
        if fs is not None and abs(fs - rate) > TIME_JITTER * rate:
            raise RecordingFileError(
                f"the form says fs = {fs:g} Hz but the time column {names[time_index]!r} says "
                f"{rate:.6g} Hz"
            )
        fs = rate
        del names[time_index], columns[time_index]
    elif fs is None:
        raise RecordingFileError(
            f"{path.name} has no time column ({', '.join(sorted(TIME_COLUMNS))}): give the "
            "sampling rate in the form field fs"
        )
    if not names:
        raise RecordingFileError(f"{path.name} has a time column but no lead column")
    return finish(path.stem, "csv", float(fs), names, columns, limits)


def _rate_from_time(file: str, column: str, t: npt.NDArray[np.float64]) -> float:
    if len(t) < 2 or np.isnan(t).any():
        raise RecordingFileError(f"{file}: the time column {column!r} has missing values")
    steps = np.diff(t)
    step = float(np.median(steps))
    if step <= 0 or np.abs(steps - step).max() > TIME_JITTER * step:
        raise RecordingFileError(
            f"{file}: the time column {column!r} is not evenly spaced and increasing"
        )
    return (len(t) - 1) / float(t[-1] - t[0])  # the mean step: robust to rounded times


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True
