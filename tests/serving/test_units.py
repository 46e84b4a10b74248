"""Parts that need no model: settings, forwarded headers, the micro-batcher, the worker class,
the Gunicorn config and ``ml serve``."""

from __future__ import annotations

import os
import runpy
import socket
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from click.testing import CliRunner
from fastapi import APIRouter, Depends, Request
from pydantic import ValidationError

from cli.main import cli
from hearteye.errors import SignalError
from hearteye.model.wrapper import StripInput, StripPrediction
from serving.batcher import MicroBatcher
from serving.context import ClientResolver, new_request_id
from serving.settings import ServingSettings
from serving.worker import enable_nodelay

REPO = Path(__file__).resolve().parents[2]


def test_settings_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HEARTEYE_MODELS", "ecg-xgboost, ecg-bilstm")
    monkeypatch.setenv("HEARTEYE_DEFAULT_MODEL", "ecg-bilstm")
    monkeypatch.setenv("HEARTEYE_CORS_ALLOWED_ORIGINS", '["https://a.example"]')
    monkeypatch.setenv("HEARTEYE_TRUSTED_PROXIES", "127.0.0.1,10.0.0.0/8")
    monkeypatch.setenv("HEARTEYE_JWT_SECRET", "s" * 40)
    settings = ServingSettings()
    assert settings.models == ["ecg-xgboost", "ecg-bilstm"]
    assert settings.default_model == "ecg-bilstm"
    assert settings.cors_allowed_origins == ["https://a.example"]
    assert settings.trusted_proxies == ["127.0.0.1", "10.0.0.0/8"]
    assert settings.jwt_secret_value() == "s" * 40
    assert "s" * 40 not in repr(settings)
    assert settings.model_cache_path == settings.home / "model-cache"
    assert settings.poll_interval_s <= 5


def test_settings_defaults_and_descriptions() -> None:
    settings = ServingSettings()
    assert settings.models == ["ecg-xgboost", "ecg-bilstm"]
    assert settings.model_alias == "production"
    assert (settings.min_fs_hz, settings.max_fs_hz) == (100.0, 1000.0)
    assert (settings.min_strip_s, settings.max_strip_s) == (2.0, 600.0)
    assert settings.cors_allowed_origins == []
    for name, field in ServingSettings.model_fields.items():
        assert field.description, f"{name} has no description"


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"default_model": "other"}, "not one of the served models"),
        ({"models": ["a", "a"], "default_model": "a"}, "lists a name twice"),
        ({"min_fs_hz": 500, "max_fs_hz": 400}, "min_fs_hz"),
        ({"trusted_proxies": ["nginx"]}, "not an IP address"),
        ({"poll_interval_s": 0}, "greater than 0"),
        ({"models": []}, "at least 1"),
    ],
)
def test_settings_refused(values: dict[str, Any], message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        ServingSettings(**values)


def test_forwarded_for_only_from_trusted_proxies() -> None:
    resolver = ClientResolver(["127.0.0.1", "10.0.0.0/8"])
    # nginx appends the address it saw; earlier hops were written by the client.
    assert resolver.client_addr("127.0.0.1", "6.6.6.6, 203.0.113.5") == "203.0.113.5"
    assert resolver.client_addr("127.0.0.1", "203.0.113.5, 10.1.2.3") == "203.0.113.5"
    assert resolver.client_addr("127.0.0.1", "10.1.2.3") == "10.1.2.3"
    assert resolver.client_addr("127.0.0.1", "not-an-ip") == "127.0.0.1"
    assert resolver.client_addr("198.51.100.1", "203.0.113.5") == "198.51.100.1"
    assert resolver.client_addr("127.0.0.1", None) == "127.0.0.1"
    assert resolver.client_addr(None, "203.0.113.5") is None
    ids = {new_request_id() for _ in range(1000)}
    assert len(ids) == 1000
    assert all(len(i) == 32 for i in ids)


class _Model:
    """Stands in for ECGBeatModel: counts classifier calls, refuses fs == 13."""

    def __init__(self) -> None:
        self.calls: list[int] = []
        self.gate = threading.Event()

    def predict_strips(self, strips: list[StripInput]) -> list[StripPrediction]:
        self.gate.wait(5)
        self.calls.append(len(strips))
        if any(s.fs == 13 for s in strips):
            raise SignalError("fs", "unlucky")
        return [
            StripPrediction(np.array([1]), s.fs, np.full((1, 5), 0.2, np.float32)) for s in strips
        ]


def _loaded(model: _Model) -> Any:
    class Loaded:
        pass

    loaded = Loaded()
    loaded.model = model  # type: ignore[attr-defined]
    return loaded


def test_micro_batcher_gathers_and_isolates_failures() -> None:
    model = _Model()
    loaded = _loaded(model)
    batcher = MicroBatcher("m", window_s=0.05, max_strips=8)
    try:
        futures = [batcher.submit(loaded, StripInput([0.0], fs)) for fs in (1, 2, 13, 4)]
        model.gate.set()
        results = [f.exception(5) or f.result(5).fs for f in futures]
    finally:
        batcher.close()
    assert results[:2] == [1, 2]
    assert isinstance(results[2], SignalError)
    assert results[3] == 4
    assert model.calls[0] == 4  # one call for the batch, then each strip alone to find the bad one
    assert batcher.strips == 4


def test_micro_batcher_keeps_versions_apart_and_answers_after_close() -> None:
    old, new = _Model(), _Model()
    old.gate.set()
    new.gate.set()
    batcher = MicroBatcher("m", window_s=0.02, max_strips=8)
    futures = [batcher.submit(_loaded(m), StripInput([0.0], 7)) for m in (old, new, old)]
    assert [f.result(5).fs for f in futures] == [7, 7, 7]
    assert sum(old.calls) == 2
    assert sum(new.calls) == 1
    batcher.close()
    late = batcher.submit(_loaded(old), StripInput([0.0], 9))
    assert late.result(1).fs == 9


def test_worker_sets_tcp_nodelay_on_the_listener_and_accepted_sockets() -> None:
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)  # proto 0, like gunicorn's
    try:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        assert enable_nodelay(listener)
        client = socket.create_connection(listener.getsockname())
        accepted, _ = listener.accept()
        assert accepted.proto == 0  # what makes asyncio skip TCP_NODELAY ...
        assert accepted.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY)  # ... inherited here
        client.close()
        accepted.close()
    finally:
        listener.close()
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as unix:
        assert not enable_nodelay(unix)


def test_gunicorn_config(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("HEARTEYE_WORKERS", "3")
    monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", str(tmp_path / "metrics"))
    (tmp_path / "metrics").mkdir()
    (tmp_path / "metrics" / "counter_123.db").write_bytes(b"stale")
    config = runpy.run_path(str(REPO / "serving" / "gunicorn.conf.py"))
    assert config["workers"] == 3
    assert config["worker_class"] == "serving.worker.HeartEyeUvicornWorker"
    assert config["preload_app"] is False
    assert config["accesslog"] is None
    assert config["keepalive"] > 60
    config["on_starting"](None)
    assert not (tmp_path / "metrics" / "counter_123.db").exists()


def test_gunicorn_and_uvicorn_knobs_come_from_serving_settings(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The process knobs are ServingSettings fields (typed, one declaration), not raw environ."""
    for name in ("HEARTEYE_WORKERS", "WEB_CONCURRENCY"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("WEB_CONCURRENCY", "5")  # the conventional alias
    monkeypatch.setenv("HEARTEYE_BIND", "127.0.0.1:8999")
    monkeypatch.setenv("HEARTEYE_WORKER_TIMEOUT_S", "200")
    monkeypatch.setenv("HEARTEYE_GRACEFUL_TIMEOUT_S", "7")
    monkeypatch.setenv("HEARTEYE_GUNICORN_LOG_LEVEL", "warning")
    config = runpy.run_path(str(REPO / "serving" / "gunicorn.conf.py"))
    assert (config["workers"], config["bind"]) == (5, ["127.0.0.1:8999"])
    assert (config["timeout"], config["graceful_timeout"], config["loglevel"]) == (
        200,
        7,
        "warning",
    )
    monkeypatch.setenv("HEARTEYE_WORKERS", "4")  # ours wins over the alias
    assert ServingSettings().workers == 4
    assert ServingSettings(workers=3).workers == 3
    monkeypatch.setenv("HEARTEYE_WORKERS", "many")
    with pytest.raises(ValidationError, match="HEARTEYE_WORKERS"):
        runpy.run_path(str(REPO / "serving" / "gunicorn.conf.py"))


def test_the_worker_takes_its_loop_and_parser_from_serving_settings(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from gunicorn.config import Config
    from gunicorn.glogging import Logger

    from serving.worker import HeartEyeUvicornWorker

    def worker() -> HeartEyeUvicornWorker:
        return HeartEyeUvicornWorker(0, os.getppid(), [], None, 30, Config(), Logger(Config()))

    monkeypatch.setenv("HEARTEYE_UVICORN_LOOP", "asyncio")
    monkeypatch.setenv("HEARTEYE_UVICORN_HTTP", "h11")
    made = worker()
    made.tmp.close()  # the heartbeat file Gunicorn opens for each worker
    assert (made.config.loop, made.config.http) == ("asyncio", "h11")
    assert HeartEyeUvicornWorker.CONFIG_KWARGS["loop"] == "auto"  # the class is left alone
    monkeypatch.setenv("HEARTEYE_UVICORN_LOOP", "tokio")
    with pytest.raises(ValidationError, match="uvicorn_loop"):
        worker()


def test_gunicorn_refuses_a_port_another_server_listens_on() -> None:
    """With reuse_port the workers could co-bind a taken port and split its traffic: refused."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as other:
        other.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)  # even one that allows it
        other.bind(("127.0.0.1", 0))
        other.listen()
        port = other.getsockname()[1]
        done = subprocess.run(
            [
                str(Path(sys.executable).parent / "gunicorn"),
                "-c",
                str(REPO / "serving" / "gunicorn.conf.py"),
                "--bind",
                f"127.0.0.1:{port}",
                "serving.app:create_app()",
            ],
            capture_output=True,
            text=True,
            timeout=60,
            cwd=REPO,
        )
    assert done.returncode != 0
    assert f"cannot listen on 127.0.0.1:{port}: Address already in use" in done.stderr


def test_ml_serve_execs_gunicorn(monkeypatch: pytest.MonkeyPatch) -> None:
    runner = CliRunner()
    printed = runner.invoke(cli, ["serve", "--print-command", "--port", "8123", "--workers", "3"])
    assert printed.exit_code == 0, printed.output
    command = printed.output.split()
    assert command[1:] == [
        "-c",
        str(REPO / "serving" / "gunicorn.conf.py"),
        "--bind",
        "127.0.0.1:8123",
        "--workers",
        "3",
        "serving.app:create_app()",
    ]
    assert Path(command[0]).name == "gunicorn"

    calls: list[tuple[str, list[str]]] = []
    monkeypatch.setattr("os.execv", lambda path, args: calls.append((path, args)))
    monkeypatch.setattr("os.chdir", lambda path: None)
    result = runner.invoke(cli, ["serve", "--host", "0.0.0.0"])
    assert result.exit_code == 0, result.output
    ((path, args),) = calls
    assert args[0] == path
    assert "0.0.0.0:8000" in args
    assert "--workers" not in args  # the config's HEARTEYE_WORKERS default applies


def test_the_fast_path_takes_over_exactly_the_prediction_routes() -> None:
    # (The routes' annotations are resolved in this module's globals: Request is imported there.)
    from serving.fastpath import fast_routes
    from serving.routes import audit, auth, health, models, predict

    assert set(fast_routes(predict.router.routes)) == {"/api/v1/predict", "/api/v1/predict/batch"}
    others = [r for m in (audit, auth, health, models) for r in m.router.routes]
    assert fast_routes(others) == {}

    async def async_user(request: Request) -> str:
        return "someone"

    def sync_user(request: Request) -> str:
        return "someone"

    router = APIRouter()

    @router.post("/async-dependency")
    async def async_dependency(
        body: dict[str, int], request: Request, user: str = Depends(async_user)
    ) -> None:
        """The shape of the prediction routes."""

    @router.post("/sync-dependency")
    async def sync_dependency(
        body: dict[str, int], request: Request, user: str = Depends(sync_user)
    ) -> None:
        """A sync dependency (FastAPI runs it in the thread pool): not for the fast path."""

    assert set(fast_routes(router.routes)) == {"/async-dependency"}
