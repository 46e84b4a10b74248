"""From uploaded file names to a :class:`Recording`: which reader, by the files' suffixes."""

from __future__ import annotations

from pathlib import Path

from hearteye.ecgfiles import csv_files, edf_files, wfdb_files
from hearteye.ecgfiles.recording import Limits, Recording, RecordingFileError

ACCEPTED = "WFDB (.hea + .dat, optionally .atr), one EDF/EDF+/BDF (.edf, .bdf) or one CSV (.csv)"


def recording_format(names: list[str]) -> str:
    """``"wfdb"``, ``"edf"`` or ``"csv"`` for these file names; refuses mixtures and strangers."""
    if not names:
        raise RecordingFileError(f"no file uploaded: upload {ACCEPTED}")
    suffixes = {Path(n).suffix.lower() for n in names}
    for fmt, known in (
        ("wfdb", wfdb_files.SUFFIXES),
        ("edf", edf_files.SUFFIXES),
        ("csv", csv_files.SUFFIXES),
    ):
        if suffixes <= known:
            if fmt != "wfdb" and len(names) > 1:
                raise RecordingFileError(f"upload one {fmt.upper()} file at a time")
            return fmt
    strangers = [n for n in names if Path(n).suffix.lower() not in _ALL]
    if strangers:
        raise RecordingFileError(f"{', '.join(strangers)}: not an ECG file type; upload {ACCEPTED}")
    raise RecordingFileError(f"files of different formats ({', '.join(names)}): upload {ACCEPTED}")


_ALL = wfdb_files.SUFFIXES | edf_files.SUFFIXES | csv_files.SUFFIXES


def read_recording(
    directory: Path, names: list[str], limits: Limits, *, fs: float | None = None
) -> Recording:
    """Read the uploaded files ``names`` (saved under ``directory``) as one recording.

    ``fs`` (Hz) is only for a CSV without a time column. Raises :class:`RecordingFileError`.
    """
    fmt = recording_format(names)
    if fs is not None and fmt != "csv":
        raise RecordingFileError("fs is only for CSV files: the other formats carry their rate")
    if fmt == "wfdb":
        return wfdb_files.read_wfdb(directory, names, limits)
    if fmt == "edf":
        return edf_files.read_edf(directory / names[0], limits)
    return csv_files.read_csv(directory / names[0], limits, fs)
