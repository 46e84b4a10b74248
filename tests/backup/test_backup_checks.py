"""A backup is checked in full before anything is restored, and `ml backup` / `ml restore` refuse
in one line when a tool, a setting or a service is missing. The end-to-end test on the real stack
is tests/integration/test_backup.py."""

from __future__ import annotations

import hashlib
import json
import shutil
import socket
import tarfile
from pathlib import Path

import pytest
from click.testing import CliRunner

from cli.main import cli
from hearteye_platform.backup import MANIFEST, BackupError, verify
from hearteye_platform.backup.manifest import FORMAT, FORMAT_VERSION, part, write_manifest
from hearteye_platform.backup.objects import INDEX, ObjectEntry, write_index

OBJECTS = {"artifacts/1/model.ubj": b"weights" * 100, "recordings/ab12": b"ecg" * 50}


def _fake_backup(root: Path) -> Path:
    """A backup laid out as ml backup writes one (the dump is opaque bytes here)."""
    root.mkdir()
    (root / "platform.dump").write_bytes(b"PGDMP platform")
    entries = []
    for key, content in OBJECTS.items():
        digest = hashlib.sha256(content).hexdigest()
        entry = ObjectEntry("mlflow", key, len(content), digest)
        (root / entry.path).parent.mkdir(parents=True, exist_ok=True)
        (root / entry.path).write_bytes(content)
        entries.append(entry)
    write_index(entries, root / INDEX)
    write_manifest(
        root,
        {
            "format": FORMAT,
            "format_version": FORMAT_VERSION,
            "databases": {"platform": {**part(root, "platform.dump"), "tables": {}}},
            "objects": {**part(root, INDEX), "buckets": {"mlflow": {"count": 2, "bytes": 850}}},
        },
    )
    return root


def test_an_intact_backup_verifies(tmp_path: Path) -> None:
    manifest, entries = verify(_fake_backup(tmp_path / "b"))
    assert {e.key for e in entries} == set(OBJECTS)
    assert manifest["databases"]["platform"]["file"] == "platform.dump"


def _flip_first_byte(path: Path) -> None:
    data = bytearray(path.read_bytes())
    data[0] ^= 0x01
    path.write_bytes(bytes(data))


@pytest.mark.parametrize(
    ("damage", "message"),
    [
        (lambda r: (r / MANIFEST).unlink(), "manifest.json is missing"),
        (lambda r: _flip_first_byte(r / "platform.dump"), "part platform.dump does not match"),
        (lambda r: (r / "platform.dump").unlink(), "part platform.dump of the backup is missing"),
        (
            lambda r: _flip_first_byte(_obj(r)),
            "does not match its sha256",
        ),
        (lambda r: (r / "objects" / _obj_rel(r)).unlink(), "is missing"),
        (lambda r: _edit_index(r), "objects.jsonl does not match its sha256"),
        (lambda r: (r / MANIFEST).write_text("{"), "is not valid JSON"),
    ],
    ids=[
        "no-manifest",
        "dump-altered",
        "dump-missing",
        "object-altered",
        "object-missing",
        "index-altered",
        "manifest-garbled",
    ],
)
def test_a_damaged_backup_is_refused(tmp_path: Path, damage, message: str) -> None:  # type: ignore[no-untyped-def]
    root = _fake_backup(tmp_path / "b")
    damage(root)
    with pytest.raises(BackupError, match=message):
        verify(root)


def _obj_rel(root: Path) -> str:
    entry = json.loads((root / INDEX).read_text().splitlines()[0])
    return f"{entry['sha256'][:2]}/{entry['sha256']}"


def _obj(root: Path) -> Path:
    return root / "objects" / _obj_rel(root)


def _edit_index(root: Path) -> None:
    lines = (root / INDEX).read_text().splitlines()
    (root / INDEX).write_text("\n".join(lines[:1]) + "\n")


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def stack_env(monkeypatch: pytest.MonkeyPatch, isolated_state: Path) -> None:
    """Settings naming PostgreSQL databases and an S3 server that nothing listens on."""
    port = _closed_port()
    monkeypatch.setenv("HEARTEYE_DATABASE_URL", f"postgresql://app@127.0.0.1:{port}/p")
    monkeypatch.setenv("HEARTEYE_DATABASE_OWNER_URL", f"postgresql://owner@127.0.0.1:{port}/p")
    monkeypatch.setenv("MLFLOW_BACKEND_STORE_URI", f"postgresql://owner@127.0.0.1:{port}/m")
    monkeypatch.setenv("HEARTEYE_S3_ENDPOINT", f"http://127.0.0.1:{port}")
    monkeypatch.setenv("HEARTEYE_S3_ACCESS_KEY", "key")
    monkeypatch.setenv("HEARTEYE_S3_SECRET_KEY", "secret")


def _one_line_failure(args: list[str]) -> str:
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 1, result.output
    assert result.exception is None or isinstance(result.exception, SystemExit)
    assert "Traceback" not in result.output
    # Status lines (stderr) may come first; the failure is one line, click's "Error: ...".
    errors = [line for line in result.output.splitlines() if line.startswith("Error: ")]
    assert len(errors) == 1, result.output
    assert result.output.rstrip().endswith(errors[0]), result.output
    return errors[0]


def test_backup_without_pg_dump_refuses_in_one_line(
    stack_env: None, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PATH", str(tmp_path / "empty-bin"))
    line = _one_line_failure(["backup", str(tmp_path / "b")])
    assert "pg_dump not found on PATH" in line
    assert not (tmp_path / "b").exists()


def test_backup_with_the_s3_server_down_refuses_in_one_line(
    stack_env: None, tmp_path: Path
) -> None:
    line = _one_line_failure(["backup", str(tmp_path / "b.tar")])
    assert "listing bucket mlflow" in line
    assert "Could not connect" in line
    assert list(tmp_path.iterdir()) == []  # nothing left behind, not even a partial directory


def test_backup_without_mlflow_s_database_or_on_sqlite_refuses(
    stack_env: None, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("MLFLOW_BACKEND_STORE_URI")
    assert "MLFLOW_BACKEND_STORE_URI" in _one_line_failure(["backup", str(tmp_path / "b")])
    monkeypatch.setenv("MLFLOW_BACKEND_STORE_URI", f"sqlite:///{tmp_path / 'mlflow.db'}")
    assert "the mlflow database is sqlite" in _one_line_failure(["backup", str(tmp_path / "b")])


def test_restore_of_a_tampered_tar_touches_nothing(stack_env: None, tmp_path: Path) -> None:
    """Verified before any service is contacted: the settings here point at nothing at all."""
    root = _fake_backup(tmp_path / "b")
    _flip_first_byte(_obj(root))
    with tarfile.open(tmp_path / "b.tar", "w") as tar:
        for path in sorted(root.rglob("*")):
            tar.add(path, arcname=str(path.relative_to(root)), recursive=False)
    shutil.rmtree(root)
    line = _one_line_failure(["restore", str(tmp_path / "b.tar")])
    assert "does not match its sha256" in line
    assert "partial" not in line
    missing = _one_line_failure(["restore", str(tmp_path / "nothing-here")])
    assert "does not exist" in missing
