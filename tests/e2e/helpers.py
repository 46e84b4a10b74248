"""What the end-to-end tests do to the stack: MLflow and the CLI pointed at it, quick training,
requests through nginx, nginx's access log, and the run's summary."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest

from hearteye.settings import HearteyeSettings, get_settings
from tests.integration.conftest import ARTIFACTS
from tests.integration.native_stack import NativeStack

#: The tests' own client address: its own rate-limit buckets at nginx (the integration tests
#: use 127.0.0.1 and 127.0.0.2), and recognisable in the audit trail.
CLIENT_ADDR = "127.0.0.3"
#: Lines printed at the end of the run (and kept in test-artifacts/e2e-summary.txt).
SUMMARY: list[str] = []


def note(line: str) -> None:
    """Add a line to the summary and print it at once (visible with -s)."""
    SUMMARY.append(line)
    print(line, flush=True)


def write_summary() -> Path:
    path = ARTIFACTS / "e2e-summary.txt"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(SUMMARY) + "\n")
    return path


def nginx_client(stack: NativeStack) -> httpx.Client:
    """HTTP through nginx (the stack's only public entry), from ``CLIENT_ADDR``."""
    transport = httpx.HTTPTransport(local_address=CLIENT_ADDR)
    return httpx.Client(base_url=stack.url, transport=transport, timeout=60)


@contextmanager
def on_stack(stack: NativeStack, home: Path, mitdb_dir: Path) -> Iterator[None]:
    """MLflow (library and CLI) on the stack through nginx as its admin; HeartEye's state in
    ``home``; the platform database as the application role (what `ml users` needs)."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("MLFLOW_TRACKING_URI", stack.mlflow_uri)
        mp.delenv("MLFLOW_REGISTRY_URI", raising=False)
        mp.setenv("MLFLOW_TRACKING_USERNAME", stack.admin[0])
        mp.setenv("MLFLOW_TRACKING_PASSWORD", stack.admin[1])
        mp.setenv("HEARTEYE_HOME", str(home))
        mp.setenv("HEARTEYE_MITDB_DIR", str(mitdb_dir))
        mp.setenv("HEARTEYE_DATABASE_URL", stack.env["HEARTEYE_DATABASE_URL"])
        mp.delenv("HEARTEYE_DATABASE_OWNER_URL", raising=False)
        get_settings.cache_clear()
        try:
            yield
        finally:
            get_settings.cache_clear()


def share_beat_cache(home: Path, cache: Path) -> None:
    """Use the session's dataset cache (tests/conftest.py) for ``home``'s training runs."""
    (cache / "beats").mkdir(parents=True, exist_ok=True)
    (home / "cache").mkdir(parents=True, exist_ok=True)
    if not (home / "cache" / "beats").exists():
        (home / "cache" / "beats").symlink_to(cache / "beats", target_is_directory=True)


def quick_train(kind: str, seed: int = 0) -> tuple[str, str, float]:
    """``training.run.train(kind, settings, quick=True)`` on the stack: (version, run id, s)."""
    from training.run import train

    began = time.monotonic()
    result = train(kind, HearteyeSettings(), quick=True, seed=seed)
    return result.version, result.run_id, time.monotonic() - began


def ml(*args: str, stdin: str | None = None) -> str:
    """Run the `ml` CLI in this process (click's runner); its stdout. Fails on a non-zero exit."""
    import traceback

    from click.testing import CliRunner

    from cli.main import cli

    get_settings.cache_clear()
    result = CliRunner().invoke(cli, list(args), input=stdin)
    if result.exit_code != 0:
        trace = "".join(traceback.format_exception(*result.exc_info)) if result.exc_info else ""
        pytest.fail(
            f"ml {' '.join(args)} exited {result.exit_code}:\n{result.stderr}\n{result.stdout}"
            f"\n{trace}"
        )
    return result.stdout


def parse_time(value: str) -> float:
    """An ISO 8601 time (with its zone) as a Unix timestamp."""
    return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()


@dataclass(frozen=True)
class Answer:
    """One prediction answered through nginx."""

    request_id: str  # the API's (in the body and the audit trail)
    nginx_id: str  # nginx's $request_id (its access log); the same once serving adopts it
    model: str
    version: str
    run_id: str | None
    sent: float  # Unix time
    received: float
    body: dict[str, Any] = field(repr=False)


def predict(http: httpx.Client, token: str, signal: np.ndarray, model: str | None = None) -> Answer:
    payload: dict[str, Any] = {"signal": [float(v) for v in signal], "fs": 360.0}
    if model is not None:
        payload["model"] = model
    sent = time.time()
    response = http.post(
        "/api/v1/predict", json=payload, headers={"Authorization": f"Bearer {token}"}
    )
    received = time.time()
    assert response.status_code == 200, (response.status_code, response.text[:500])
    body = response.json()
    ref = body["model"]
    return Answer(
        body["request_id"],
        nginx_request_id(response),
        ref["name"],
        ref["version"],
        ref["run_id"],
        sent,
        received,
        body,
    )


def api_request_id(response: httpx.Response) -> str:
    """The API's request id (what it audits): its own X-Request-ID, else the one nginx sent it."""
    return response.headers.get_list("X-Request-ID")[0]


def nginx_request_id(response: httpx.Response) -> str:
    """nginx's request id: the X-Request-ID it adds to every answer (after any upstream's own)."""
    return response.headers.get_list("X-Request-ID")[-1]


def upstreams(stack: NativeStack, request_ids: set[str]) -> dict[str, str]:
    """nginx request id -> the upstream (serving instance host:port, or "" when nginx answered
    itself), from nginx's JSON access log. nginx writes a line once the request is over, which may
    be just after the client has its answer: wait up to 10 s for every id."""
    deadline = time.monotonic() + 10
    while True:
        found = {
            str(entry["request_id"]): str(entry["upstream_addr"])
            for entry in stack.access_log()
            if entry["request_id"] in request_ids
        }
        if found.keys() >= request_ids or time.monotonic() > deadline:
            missing = request_ids - found.keys()
            assert not missing, f"not in nginx's access log: {sorted(missing)[:5]}"
            return found
        time.sleep(0.1)
