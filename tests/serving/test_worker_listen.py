"""A Gunicorn worker (serving.worker.HeartEyeUvicornWorker, ``reuse_port``) takes connections only
once its app has started: before that, the kernel must not queue connections on it.

Found by `make chaos` (docs/reliability.md): a worker that replaced a killed one had its own
SO_REUSEPORT listener from the fork on, and a request through nginx waited 30 s in its backlog
while the worker imported the app and loaded its models.
"""

from __future__ import annotations

import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_a_starting_worker_refuses_connections_instead_of_queueing_them(tmp_path: Path) -> None:
    gate = tmp_path / "gate"
    gate.touch()
    port = _free_port()
    log = tmp_path / "gunicorn.log"
    command = [
        sys.executable, "-m", "gunicorn", "--workers", "1", "--reuse-port",
        "--worker-class", "serving.worker.HeartEyeUvicornWorker",
        "--bind", f"127.0.0.1:{port}", "--no-control-socket",
        "--config", str(tmp_path / "none.conf.py"), "tests.serving.slow_start_app:app",
    ]  # fmt: skip
    (tmp_path / "none.conf.py").write_text("")
    with log.open("wb") as out:
        server = subprocess.Popen(
            command, cwd=REPO, stdout=out, stderr=subprocess.STDOUT,
            env={"PATH": "/usr/bin:/bin", "SLOW_START_GATE": str(gate), "HOME": str(tmp_path)},
        )  # fmt: skip
    try:
        deadline = time.monotonic() + 60
        while b"Booting worker" not in log.read_bytes():
            assert server.poll() is None, log.read_text()
            assert time.monotonic() < deadline, log.read_text()
            time.sleep(0.05)
        time.sleep(0.5)  # the worker has created its listener and is in the app's start-up
        # Before the fix the connection was accepted into the starting worker's backlog and the
        # request hung until the start-up ended; now nothing listens yet.
        for _ in range(5):
            try:
                socket.create_connection(("127.0.0.1", port), timeout=2).close()
            except ConnectionRefusedError:
                continue
            raise AssertionError("a worker still starting accepted a connection")
        gate.unlink()
        deadline = time.monotonic() + 30
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=2) as answer:
                    assert answer.read() == b"ready"
                    break
            except OSError:
                assert time.monotonic() < deadline, log.read_text()
                time.sleep(0.1)
    finally:
        server.terminate()
        server.wait(30)
