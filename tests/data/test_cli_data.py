"""`ml data info | verify | fetch` on the real records."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner

from cli.main import cli

pytestmark = pytest.mark.data


@pytest.fixture
def runner(mitdb_dir: Path, beat_cache_dir: Path, tmp_path: Path, monkeypatch) -> CliRunner:
    home = tmp_path / "home"
    home.mkdir()
    (home / "cache").symlink_to(beat_cache_dir)  # share the session's dataset cache
    monkeypatch.setenv("HEARTEYE_HOME", str(home))
    monkeypatch.setenv("HEARTEYE_MITDB_DIR", str(mitdb_dir))
    return CliRunner()


def test_info_json_gives_the_exact_counts(runner: CliRunner) -> None:
    result = runner.invoke(cli, ["data", "info", "--json"])
    assert result.exit_code == 0, result.output
    payload = json.loads(result.stdout)
    assert payload["splits"] == {
        "DS1": {"N": 45866, "S": 944, "V": 3788, "F": 415, "Q": 8},
        "DS2": {"N": 44259, "S": 1837, "V": 3221, "F": 388, "Q": 7},
    }
    assert len(payload["digest"]) == 64


def test_verify_passes_on_the_pristine_copy(runner: CliRunner, mitdb_dir: Path) -> None:
    checksums = mitdb_dir.with_name("mitdb.SHA256SUMS")
    result = runner.invoke(cli, ["data", "verify", "--checksums", str(checksums), "--json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["ok"] is True
    assert report["checked"] == 144


def test_verify_reports_missing_and_altered_files(
    runner: CliRunner, mitdb_dir: Path, tmp_path: Path, monkeypatch
) -> None:
    data = tmp_path / "mitdb"
    data.mkdir()
    for name in ("100", "101"):
        for suffix in (".hea", ".dat", ".atr"):
            shutil.copyfile(mitdb_dir / f"{name}{suffix}", data / f"{name}{suffix}")
    lines = mitdb_dir.with_name("mitdb.SHA256SUMS").read_text().splitlines()
    (tmp_path / "sums").write_text(
        "\n".join(line for line in lines if line.split()[1][:3] in ("100", "101")) + "\n"
    )
    (data / "101.atr").unlink()
    with (data / "100.dat").open("r+b") as fh:
        fh.seek(1000)
        fh.write(b"\x00\x01")
    monkeypatch.setenv("HEARTEYE_MITDB_DIR", str(data))
    result = runner.invoke(cli, ["data", "verify", "--checksums", str(tmp_path / "sums")])
    assert result.exit_code == 1
    assert "MISSING  101.atr" in result.stdout
    assert "ALTERED  100.dat" in result.stdout
    assert "1 missing and 1 altered of 6 files" in result.output


def test_fetch_offline_fails_clearly_and_writes_nothing(
    runner: CliRunner, tmp_path: Path, monkeypatch
) -> None:
    # Route PhysioNet through a closed local port: deterministic "offline" on any machine.
    monkeypatch.setenv("HTTPS_PROXY", "http://127.0.0.1:9")
    monkeypatch.setenv("HTTP_PROXY", "http://127.0.0.1:9")
    destination = tmp_path / "downloads" / "mitdb"
    monkeypatch.setenv("HEARTEYE_MITDB_DIR", str(destination))
    result = runner.invoke(cli, ["data", "fetch"])
    assert result.exit_code == 1
    assert "could not download MIT-BIH from PhysioNet" in result.output
    assert not destination.exists()
    assert list((tmp_path / "downloads").iterdir()) == []  # no staging folder left behind
