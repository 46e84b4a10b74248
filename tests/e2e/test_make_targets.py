"""The README's first command, run literally: `make demo` then `make demo-stop`, in temporary state
so it never touches a developer's. (`make stack-up` and friends are one-line wrappers of
``infra/native/hearteye_stack.py``, which ``tests/integration`` drives directly.)"""

from __future__ import annotations

import os
import socket
import subprocess
from pathlib import Path

import httpx
import pytest

from tests.conftest import REPO_ROOT

pytestmark = pytest.mark.e2e


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _make(target: str, env: dict[str, str], timeout: float) -> subprocess.CompletedProcess[str]:
    # -o: the venv is already installed by `make test`; don't let a touched pyproject reinstall it.
    return subprocess.run(
        ["make", "--no-print-directory", "-o", ".venv/.installed", target],
        cwd=REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def _env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MLFLOW_", "HEARTEYE_"))}
    env["HEARTEYE_MITDB_DIR"] = os.environ.get("HEARTEYE_MITDB_DIR", "")
    if not env["HEARTEYE_MITDB_DIR"]:
        del env["HEARTEYE_MITDB_DIR"]  # the Makefile finds ../shared/datasets/mitdb itself
    env.update(extra)
    return env


def test_make_demo_trains_promotes_serves_and_predicts(
    tmp_path: Path, beat_cache_dir: Path
) -> None:
    port = _free_port()
    home = tmp_path / "home"
    # The session's dataset cache (same records, same config, same digests): the demo's
    # `ml data info` then reads the 44 records' beats instead of rebuilding them (~15 s).
    home.mkdir()
    (home / "cache").symlink_to(beat_cache_dir, target_is_directory=True)
    env = _env(HEARTEYE_HOME=str(home), HEARTEYE_DEMO_PORT=str(port))
    try:
        result = _make("demo", env, timeout=900)
        assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
        out = result.stdout
        for model in ("ecg-xgboost", "ecg-bilstm"):
            assert f"$ ml promote {model} 1 --yes --force" in out
            assert f"{model} v1 (run " in out
            assert f"  {model} v1 in " in out  # the training summary beside the anchor
        assert out.count("counts: N=") == 2
        assert f"The API keeps running at http://127.0.0.1:{port}" in out
        # ... and it does.
        assert httpx.get(f"http://127.0.0.1:{port}/ready", timeout=5).status_code == 200
    finally:
        stop = _make("demo-stop", env, timeout=60)
    assert stop.returncode == 0, stop.stderr
    with pytest.raises(httpx.HTTPError):
        httpx.get(f"http://127.0.0.1:{port}/live", timeout=2)
