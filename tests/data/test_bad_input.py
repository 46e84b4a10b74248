"""Missing, incomplete and corrupt data: a typed error (library) or a non-zero exit (CLI) naming
the record and the problem, and nothing half-written left behind."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from cli.main import cli
from hearteye.dataset import build_dataset
from hearteye.errors import DataError, RecordError, SignalError
from hearteye.preprocess.config import PreprocessConfig
from hearteye.preprocess.pipeline import preprocess
from hearteye.records import load_record

pytestmark = pytest.mark.data

CONFIG = PreprocessConfig()


@pytest.fixture
def copy_of(mitdb_dir: Path, tmp_path: Path):
    """Copy the named records into a private, writable data directory."""

    def make(*names: str) -> Path:
        out = tmp_path / "mitdb"
        out.mkdir(exist_ok=True)
        for name in names:
            for suffix in (".hea", ".dat", ".atr"):
                shutil.copyfile(mitdb_dir / f"{name}{suffix}", out / f"{name}{suffix}")
        return out

    return make


def _write_record(directory: Path, name: str, signal: np.ndarray, fs: int = 360) -> None:
    import wfdb

    directory.mkdir(parents=True, exist_ok=True)
    wfdb.wrsamp(
        name, fs=fs, units=["mV"], sig_name=["MLII"], p_signal=signal[:, None],
        fmt=["16"], adc_gain=[200.0], baseline=[0], write_dir=str(directory),
    )  # fmt: skip
    peaks = np.arange(90, len(signal) - 10, 300)
    if len(peaks) == 0:
        peaks = np.array([len(signal) // 2])
    wfdb.wrann(name, "atr", peaks, symbol=["N"] * len(peaks), write_dir=str(directory))


def test_missing_directory(tmp_path: Path) -> None:
    with pytest.raises(DataError, match=r"does not exist.*HEARTEYE_MITDB_DIR"):
        build_dataset(tmp_path / "nowhere", ["100"], CONFIG)


def test_incomplete_directory_names_every_missing_file(copy_of, tmp_path: Path) -> None:
    data = copy_of("100", "101")
    (data / "101.dat").unlink()
    with pytest.raises(DataError, match=r"incomplete: missing 101\.dat"):
        build_dataset(data, ["100", "101", "103"], CONFIG, tmp_path / "cache")
    assert not (tmp_path / "cache").exists(), "nothing may be cached before the check passes"


def test_truncated_signal_file(copy_of) -> None:
    data = copy_of("100")
    blob = (data / "100.dat").read_bytes()
    (data / "100.dat").write_bytes(blob[: len(blob) // 3])
    with pytest.raises(RecordError, match=r"record 100: signal file 100\.dat truncated"):
        load_record(data, "100")


def test_truncated_annotation_file(copy_of) -> None:
    data = copy_of("100")
    blob = (data / "100.atr").read_bytes()
    (data / "100.atr").write_bytes(blob[:500])
    with pytest.raises(RecordError, match=r"record 100: annotation file 100\.atr is truncated"):
        load_record(data, "100")


def test_corrupt_header(copy_of) -> None:
    data = copy_of("100")
    (data / "100.hea").write_text("this is not a WFDB header\n")
    with pytest.raises(RecordError, match=r"record 100: unreadable header"):
        load_record(data, "100")


def test_record_without_the_lead(tmp_path: Path) -> None:
    import wfdb

    signal = np.sin(np.linspace(0, 60, 3600))[:, None]
    wfdb.wrsamp("900", fs=360, units=["mV"], sig_name=["V5"], p_signal=signal, fmt=["16"],
                write_dir=str(tmp_path))  # fmt: skip
    wfdb.wrann("900", "atr", np.array([100, 400]), symbol=["N", "N"], write_dir=str(tmp_path))
    with pytest.raises(RecordError, match="record 900: has no MLII lead"):
        load_record(tmp_path, "900")


def test_record_shorter_than_one_window(tmp_path: Path) -> None:
    _write_record(tmp_path, "901", np.zeros(100))
    with pytest.raises(SignalError, match="shorter than one beat window"):
        build_dataset(tmp_path, ["901"], CONFIG)


def test_nan_samples_name_the_record(tmp_path: Path) -> None:
    signal = np.sin(np.linspace(0, 60, 3600))
    signal[1000:1010] = np.nan  # written as WFDB's invalid-sample value, read back as NaN
    _write_record(tmp_path, "902", signal)
    with pytest.raises(RecordError, match=r"record 902: 10 invalid \(NaN/Inf\) samples"):
        load_record(tmp_path, "902")


@pytest.mark.parametrize("fs", [50.0, 99.9, 1000.1, 5000.0, float("nan")])
def test_out_of_range_sampling_rate(fs: float) -> None:
    with pytest.raises(SignalError) as info:
        preprocess(np.zeros(5000), fs, CONFIG)
    assert info.value.field == "fs"
    assert "100-1000 Hz" in str(info.value)


@pytest.mark.parametrize(
    ("signal", "problem"),
    [
        (np.array([0.0, np.inf] * 2000), "NaN or infinite"),
        (np.array([0.0, np.nan] * 2000), "NaN or infinite"),
        (np.zeros((2, 2000)), "1-D"),
    ],
)
def test_bad_signals(signal: np.ndarray, problem: str) -> None:
    with pytest.raises(SignalError, match=problem):
        preprocess(signal, 360.0, CONFIG)


def test_cli_exits_non_zero_with_the_message(copy_of, tmp_path: Path, monkeypatch) -> None:
    data = copy_of("100")
    blob = (data / "100.dat").read_bytes()
    (data / "100.dat").write_bytes(blob[:1000])
    monkeypatch.setenv("HEARTEYE_MITDB_DIR", str(data))
    result = CliRunner().invoke(cli, ["data", "info"])
    assert result.exit_code == 1
    assert "Error: MIT-BIH directory" in result.output  # the first problem found: missing records
    assert "Traceback" not in result.output
