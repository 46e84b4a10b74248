"""The readers on real MIT-BIH data written to each format, and the files they refuse."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from hearteye.ecgfiles import RecordingFileError, read_recording
from tests.recordings.files import (
    LIMITS,
    copy_record,
    mitdb_signal,
    write_csv,
    write_edf,
    write_wfdb,
)

pytestmark = pytest.mark.data


def test_wfdb_212_with_reference(mitdb_dir: Path, tmp_path: Path) -> None:
    names = copy_record(mitdb_dir, "208", tmp_path)
    rec = read_recording(tmp_path, names, LIMITS)
    assert (rec.format, rec.fs, rec.leads, rec.n_samples) == ("wfdb", 360.0, ("MLII", "V1"), 650000)
    assert rec.default_lead == "MLII"
    assert rec.signals.dtype == np.float32
    assert rec.reference is not None
    counts = rec.reference.counts()
    assert counts["V"] == 992
    assert sum(counts.values()) == len(rec.reference) > 2900


@pytest.mark.parametrize("fmt", ["16", "212", "80"])
def test_wfdb_formats_round_trip(mitdb_dir: Path, tmp_path: Path, fmt: str) -> None:
    names = write_wfdb(mitdb_dir, "100", fmt, tmp_path)
    rec = read_recording(tmp_path, names, LIMITS)
    original, fs = mitdb_signal(mitdb_dir, "100", 30.0)
    assert (rec.fs, rec.leads, rec.reference) == (fs, ("MLII", "V1"), None)
    tolerance = {"16": 1e-3, "212": 5e-3, "80": 2e-2}[fmt]
    assert np.abs(rec.signals.T - original).max() < tolerance


def test_wfdb_microvolts_become_millivolts(mitdb_dir: Path, tmp_path: Path) -> None:
    names = write_wfdb(mitdb_dir, "100", "16", tmp_path, units="uV")
    rec = read_recording(tmp_path, names, LIMITS)
    original, _ = mitdb_signal(mitdb_dir, "100", 30.0)
    assert np.abs(rec.signals.T - original).max() < 1e-3


@pytest.mark.parametrize("bdf", [False, True])
def test_edf_and_bdf(mitdb_dir: Path, tmp_path: Path, bdf: bool) -> None:
    path = tmp_path / ("r100.bdf" if bdf else "r100.edf")
    write_edf(mitdb_dir, "100", path, bdf=bdf)
    rec = read_recording(tmp_path, [path.name], LIMITS)
    original, _ = mitdb_signal(mitdb_dir, "100", 30.0)
    assert rec.format == ("bdf" if bdf else "edf")
    assert rec.leads == ("ECG MLII", "ECG V1")
    assert rec.default_lead == "ECG MLII"
    assert rec.fs == 360.0
    assert np.abs(rec.signals.T - original).max() < 2e-3


@pytest.mark.parametrize("time_column", [True, False])
def test_csv(mitdb_dir: Path, tmp_path: Path, time_column: bool) -> None:
    path = tmp_path / "r100.csv"
    write_csv(mitdb_dir, "100", path, time_column=time_column)
    rec = read_recording(tmp_path, [path.name], LIMITS, fs=None if time_column else 360.0)
    original, _ = mitdb_signal(mitdb_dir, "100", 30.0)
    assert rec.leads == ("MLII", "V1")
    assert rec.fs == pytest.approx(360.0)
    assert np.abs(rec.signals.T - original).max() < 1e-3


def _refused(directory: Path, names: list[str], match: str, **kw: float) -> None:
    with pytest.raises(RecordingFileError, match=match):
        read_recording(directory, names, LIMITS, **kw)


def test_bad_wfdb_uploads(mitdb_dir: Path, tmp_path: Path) -> None:
    names = copy_record(mitdb_dir, "100", tmp_path)
    _refused(tmp_path, ["100.dat"], r"needs its header \(\.hea\)")
    _refused(tmp_path, ["100.hea"], "names the signal file 100.dat, which was not uploaded")
    data = (tmp_path / "100.dat").read_bytes()
    (tmp_path / "100.dat").write_bytes(data[: len(data) // 2])
    _refused(tmp_path, names, "the header and the data disagree")


def test_unsupported_wfdb_format(mitdb_dir: Path, tmp_path: Path) -> None:
    copy_record(mitdb_dir, "100", tmp_path, atr=False)
    hea = tmp_path / "100.hea"
    hea.write_text(hea.read_text().replace("100.dat 212", "100.dat 999"))
    _refused(tmp_path, ["100.hea", "100.dat"], "WFDB signal format 999 is not supported")


def test_rate_and_length_limits(mitdb_dir: Path, tmp_path: Path) -> None:
    path = tmp_path / "r.csv"
    write_csv(mitdb_dir, "100", path, seconds=30.0, time_column=False)
    _refused(tmp_path, ["r.csv"], "outside the accepted range 100-1000 Hz", fs=50.0)
    _refused(tmp_path, ["r.csv"], "outside the accepted range", fs=2000.0)
    (tmp_path / "short.csv").write_text("MLII\n" + "0.1\n0.2\n" * 1000)
    _refused(
        tmp_path,
        ["short.csv"],
        "2000 samples at 360 Hz is 5.6 s: shorter than the minimum 10 s",
        fs=360.0,
    )


def test_bad_csv_and_other_files(tmp_path: Path) -> None:
    (tmp_path / "text.csv").write_text("MLII,V1\n0.1,0.2\n0.1,abc\n")
    _refused(tmp_path, ["text.csv"], "column 'V1', line 3: 'abc' is not a number", fs=360.0)
    (tmp_path / "nohead.csv").write_text("0.1,0.2\n0.1,0.3\n")
    _refused(tmp_path, ["nohead.csv"], "no header line", fs=360.0)
    (tmp_path / "notime.csv").write_text("MLII\n" + "0.1\n" * 5000)
    _refused(tmp_path, ["notime.csv"], "give the sampling rate in the form field fs")
    flat = "MLII,V1\n" + "0.5,nan\n" * 5000
    (tmp_path / "flat.csv").write_text(flat)
    _refused(
        tmp_path,
        ["flat.csv"],
        r"no usable ECG signal: lead MLII is flat .*V1 has no valid",
        fs=360.0,
    )
    (tmp_path / "photo.jpg").write_bytes(b"\xff\xd8\xff")
    _refused(tmp_path, ["photo.jpg"], "not an ECG file type")
    (tmp_path / "junk.edf").write_bytes(b"0       " * 40)
    _refused(tmp_path, ["junk.edf"], "not a readable EDF")
