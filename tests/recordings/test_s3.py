"""Recordings in a real S3 server (SeaweedFS, as the native stack runs it): stored, read back by a
worker without a local copy, removed with the recording."""

from __future__ import annotations

import shutil
import socket
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from hearteye_platform.db import create_db_engine, create_session_factory, upgrade_database
from hearteye_platform.recordings import RecordingStore, S3BlobStore
from tests.recordings.files import write_csv

pytestmark = [pytest.mark.integration, pytest.mark.data]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture(scope="module")
def seaweedfs() -> Iterator[Any]:
    """`weed mini` with the native stack's identities and bucket; stopped afterwards."""
    import stack_process
    import stack_services
    from stack_config import StackSettings, make_plan

    state = Path(tempfile.mkdtemp(prefix="hearteye-rec-s3-"))
    plan = make_plan(StackSettings(state_dir=state, http_port=_free_port()))
    try:
        stack_services.start_seaweedfs(plan, timeout_s=60)
        yield plan
    finally:
        stack_process.stop_all(plan.processes)
        shutil.rmtree(state, ignore_errors=True)


@pytest.fixture
def s3_env(seaweedfs: Any, monkeypatch: pytest.MonkeyPatch) -> Any:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", seaweedfs.s3_mlflow_key)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", seaweedfs.s3_mlflow_secret)
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    return seaweedfs


def test_blob_store_round_trip(s3_env: Any, tmp_path: Path) -> None:
    blobs = S3BlobStore(s3_env.bucket, s3_env.s3_endpoint)
    source = tmp_path / "a.bin"
    source.write_bytes(b"ecg" * 1000)
    assert not blobs.exists("recordings/test-a")
    blobs.put_file("recordings/test-a", source)
    blobs.put_file("recordings/test-a", source)  # idempotent
    assert blobs.exists("recordings/test-a")
    blobs.get_file("recordings/test-a", tmp_path / "b.bin")
    assert (tmp_path / "b.bin").read_bytes() == source.read_bytes()
    blobs.delete("recordings/test-a")
    assert not blobs.exists("recordings/test-a")


def test_a_recording_lives_in_the_bucket(s3_env: Any, tmp_path: Path, mitdb_dir: Path) -> None:
    from serving.recording_service import RecordingService, Upload, file_key
    from serving.settings import ServingSettings

    url = f"sqlite:///{tmp_path / 'he.db'}"
    upgrade_database(url)
    engine = create_db_engine(url)
    store = RecordingStore(create_session_factory(engine))
    blobs = S3BlobStore(s3_env.bucket, s3_env.s3_endpoint)
    write_csv(mitdb_dir, "100", tmp_path / "r100.csv", time_column=True)

    def service(home: str) -> RecordingService:
        settings = ServingSettings(home=tmp_path / home, jwt_secret="x" * 48)
        return RecordingService(settings, store, blobs)

    first = service("worker-1")
    with (tmp_path / "r100.csv").open("rb") as stream:
        row = first.ingest("carla", [Upload("r100.csv", stream)])
    assert blobs.exists(file_key(row.sha256))
    other = service("worker-2")  # another replica: no local copy, rebuilt from the bucket
    decoded = other.decoded(row)
    assert decoded.leads == ("MLII", "V1")
    assert decoded.signals.shape == (2, 30 * 360)
    other.delete(row.id, "carla")
    assert not blobs.exists(file_key(row.sha256))
    engine.dispose()
