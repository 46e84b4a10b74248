"""The public harness of the serving benchmarks: the store, the strips, the token, the servers.

``Bench`` trains (on first use) and serves one embedded MLflow store under ``--home``; the
benchmark scripts (bench_serving.py, asgi_cost.py, profile_serving.py, ...) build on it and
never on each other's private helpers.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import secrets
import socket
import statistics
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from benchmarks.loadgen import LoadResult, render_post, run_in_process  # noqa: E402

MODELS = ("ecg-xgboost", "ecg-bilstm")
STRIP_RECORDS = (
    "100", "103", "105", "111", "113", "117", "121", "123",
    "200", "202", "210", "212", "213", "214", "219", "221",
)  # fmt: skip
VERSION = re.compile(r'"version":\s*"([^"]+)"')
CLIENT_CPU = 1


@dataclass
class Row:
    part: str
    server: str
    model: str
    workers: int
    concurrency: int
    rps: float
    p50_ms: float
    p99_ms: float
    requests: int
    failed: int
    cpu_ms_per_request: float | None = None  # server CPU (all its processes) per answered request


class Bench:
    """The store, the strips, the token, and the servers of one benchmark run."""

    def __init__(self, home: Path, mitdb: Path, duration: float, warmup: float) -> None:
        self.home = home
        self.mitdb = mitdb
        self.duration = duration
        self.warmup = warmup
        self.db = home / "mlflow" / "mlflow.db"
        self.uri = f"sqlite:///{self.db}"
        self.secret = secrets.token_hex(32)
        self.versions: dict[str, list[str]] = {}
        self.strips: list[np.ndarray] = []
        self.token = ""
        self.logs = home / "logs"
        self.server_group = 0

    # -- set-up ------------------------------------------------------------------------------

    def prepare(self, models: list[str]) -> None:
        from mlflow import MlflowClient

        from hearteye.records import load_record

        self.home.mkdir(parents=True, exist_ok=True)
        self.logs.mkdir(exist_ok=True)
        os.environ["MLFLOW_TRACKING_URI"] = self.uri
        client = MlflowClient(tracking_uri=self.uri, registry_uri=self.uri)
        for model in models:
            versions = self._versions(client, model)
            if not versions:
                self._train(model)
                versions = self._versions(client, model)
            if model == models[0] and len(versions) < 2:  # the swap needs two versions
                mv = client.get_model_version(model, versions[0])
                client.create_model_version(
                    model, source=mv.source, run_id=mv.run_id, tags=dict(mv.tags),
                    model_id=mv.model_id or mv.source.removeprefix("models:/"),
                )  # fmt: skip
                versions = self._versions(client, model)
            client.set_registered_model_alias(model, "production", versions[0])
            self.versions[model] = versions
        for name in STRIP_RECORDS:
            record = load_record(self.mitdb, name)
            start = int(300 * record.fs)
            self.strips.append(np.round(record.signal[start : start + int(10 * record.fs)], 3))
        self.token = self._user_token()
        print(f"store {self.uri}: {self.versions}; {len(self.strips)} strips", file=sys.stderr)

    @staticmethod
    def _versions(client: Any, model: str) -> list[str]:
        try:
            found = client.search_model_versions(f"name='{model}'")
        except Exception:
            return []
        return sorted((str(v.version) for v in found), key=int)

    def _train(self, model: str) -> None:
        from hearteye.model.base import MODEL_KINDS
        from hearteye.settings import HearteyeSettings
        from training.run import train

        kind = {name: kind for kind, name in MODEL_KINDS.items()}[model]
        os.environ["HEARTEYE_HOME"] = str(self.home)
        os.environ["HEARTEYE_MITDB_DIR"] = str(self.mitdb)
        print(f"quick-training {model} into {self.home} ...", file=sys.stderr)
        train(kind, HearteyeSettings(), quick=True)

    def _user_token(self) -> str:
        from argon2 import PasswordHasher

        from hearteye_platform.auth_tokens import create_access_token
        from hearteye_platform.db import create_db_engine, create_session_factory, upgrade_database
        from hearteye_platform.identity import DuplicateUserError, UserStore

        url = f"sqlite:///{self.home / 'platform.db'}"
        upgrade_database(url)
        engine = create_db_engine(url, pooled=False)
        users = UserStore(create_session_factory(engine), hasher=PasswordHasher(time_cost=1))
        with contextlib.suppress(DuplicateUserError):
            users.add("bench", "clinician", "bench-password-0001")
        engine.dispose()
        return create_access_token(
            "bench", "clinician", secret=self.secret, issuer="hearteye",
            audience="hearteye-api", ttl_s=86_400,
        ).access_token  # fmt: skip

    # -- servers -----------------------------------------------------------------------------

    def server_env(self, **extra: str) -> dict[str, str]:
        env = {
            k: v
            for k, v in os.environ.items()
            if not k.startswith(("HEARTEYE_", "MLFLOW_", "PROMETHEUS_"))
        }
        env.update(
            PATH=f"{REPO / '.venv' / 'bin'}:{env.get('PATH', '')}",
            MLFLOW_TRACKING_URI=self.uri,
            HEARTEYE_DATABASE_URL=f"sqlite:///{self.home / 'platform.db'}",
            HEARTEYE_JWT_SECRET=self.secret,
            **extra,
        )
        return env

    @contextlib.contextmanager
    def ours(
        self, model: str, workers: int, worker_class: str | None = None, **env: str
    ) -> Iterator[int]:
        port = free_port()
        home = self.home / f"serving-{port}"
        command = [
            str(REPO / ".venv" / "bin" / "gunicorn"),
            "-c", str(REPO / "serving" / "gunicorn.conf.py"),
            "--bind", f"127.0.0.1:{port}", "--workers", str(workers),
        ]  # fmt: skip
        if worker_class:
            command += ["--worker-class", worker_class]
        environment = self.server_env(
            HEARTEYE_HOME=str(home),
            HEARTEYE_MODELS=model,
            HEARTEYE_DEFAULT_MODEL=model,
            **env,
        )
        with server_process(
            [*command, "serving.app:create_app()"], environment, self.logs, port
        ) as p:
            wait_http(f"http://127.0.0.1:{port}/ready", p)
            self.server_group = p.pid
            yield port

    @contextlib.contextmanager
    def mlflow(self, model: str, workers: int) -> Iterator[int]:
        port = free_port()
        version = self.versions[model][0]
        command = [
            str(REPO / ".venv" / "bin" / "mlflow"), "models", "serve",
            "-m", f"models:/{model}/{version}", "--env-manager", "local",
            "--host", "127.0.0.1", "-p", str(port), "-w", str(workers),
        ]  # fmt: skip
        with server_process(command, self.server_env(), self.logs, port) as p:
            wait_http(f"http://127.0.0.1:{port}/ping", p)
            # Its model loads the shipped preprocessing, whose numba kernels compile (first time,
            # into the model's code folder) or load from that cache on the first prediction:
            # answered predictions first, as ours answers a smoke prediction before /ready.
            body = json.dumps({"inputs": {"signal": self.strips[0].tolist(), "fs": 360.0}})
            with ThreadPoolExecutor(2 * workers) as pool:
                list(pool.map(lambda _: post_json(port, "/invocations", body), range(4 * workers)))
            self.server_group = p.pid
            yield port

    # -- measurements ------------------------------------------------------------------------

    def _ours_requests(self, model: str) -> list[bytes]:
        auth = {"Authorization": f"Bearer {self.token}"}
        return [
            render_post(
                "127.0.0.1",
                "/api/v1/predict",
                json.dumps({"signal": s.tolist(), "fs": 360.0, "model": model}).encode(),
                auth,
            )
            for s in self.strips
        ]

    def _mlflow_requests(self) -> list[bytes]:
        return [
            render_post(
                "127.0.0.1",
                "/invocations",
                json.dumps({"inputs": {"signal": s.tolist(), "fs": 360.0}}).encode(),
            )
            for s in self.strips
        ]

    def load(
        self,
        part: str,
        server: str,
        model: str,
        workers: int,
        port: int,
        concurrency: int,
        requests: list[bytes] | None = None,
    ) -> Row:
        """Closed-loop load on ``port``: ours or mlflow's requests by ``server``, else ``requests``."""
        if requests is None:
            requests = self._mlflow_requests() if server == "mlflow" else self._ours_requests(model)
        group = self.server_group
        marks: list[float] = []

        def sample_cpu() -> None:  # server CPU over the measured window only
            time.sleep(self.warmup)
            marks.append(_group_cpu_s(group))
            time.sleep(self.duration)
            marks.append(_group_cpu_s(group))

        sampler = threading.Thread(target=sample_cpu)
        sampler.start()
        result = run_in_process(
            "127.0.0.1", port, requests, concurrency=concurrency,
            duration_s=self.duration, warmup_s=self.warmup, cpu=CLIENT_CPU,
        )  # fmt: skip
        sampler.join()
        row = _row(part, server, model, workers, concurrency, result)
        if len(marks) == 2 and result.ok:
            row.cpu_ms_per_request = round((marks[1] - marks[0]) / result.ok * 1e3, 2)
        print(
            f"  {part:10s} {server:8s} {model:12s} w={workers} c={concurrency}: "
            f"{row.rps:7.1f} req/s  p50 {row.p50_ms:7.1f} ms  p99 {row.p99_ms:7.1f} ms  "
            f"failed {row.failed}  server CPU {row.cpu_ms_per_request} ms/req",
            file=sys.stderr,
        )
        return row

    def floor(self, model: str) -> dict[str, float]:
        """In-process compute per strip: one strip per call, and 16 strips per call."""
        from mlflow import MlflowClient

        from hearteye.model.wrapper import ARTIFACT_KEY, ECGBeatModel, StripInput

        client = MlflowClient(tracking_uri=self.uri, registry_uri=self.uri)
        uri = client.get_model_version_download_uri(model, self.versions[model][0])
        loaded = ECGBeatModel()
        loaded.load_dir(Path(uri.removeprefix("file://")) / "artifacts" / ARTIFACT_KEY)
        inputs = [StripInput(s, 360.0) for s in self.strips]
        for s in inputs:
            loaded.predict_strips([s])
        single, batched = [], []
        for _ in range(5):
            for s in inputs:
                started = time.perf_counter()
                loaded.predict_strips([s])
                single.append(time.perf_counter() - started)
            started = time.perf_counter()
            loaded.predict_strips(inputs)
            batched.append((time.perf_counter() - started) / len(inputs))
        return {
            "single_ms": statistics.median(single) * 1e3,
            "batched16_ms": statistics.median(batched) * 1e3,
        }

    def nodelay(self, model: str) -> list[Row]:
        """Keep-alive latency at concurrency 1: Gunicorn workers (stock uvicorn worker on the
        asyncio loop, ours on uvloop) and mlflow's uvicorn with one and two workers."""
        rows = []
        cases: list[tuple[str, str | None, dict[str, str]]] = [
            ("stock-worker-asyncio", "uvicorn.workers.UvicornH11Worker", {}),
            ("hearteye", None, {}),
        ]
        for label, worker_class, env in cases:
            with self.ours(model, 2, worker_class, **env) as port:
                rows.append(self.load("nodelay", label, model, 2, port, 1))
        for workers in (1, 2):
            with self.mlflow(model, workers) as port:
                rows.append(self.load("nodelay", "mlflow", model, workers, port, 1))
        return rows

    def swap(self, model: str) -> dict[str, Any]:
        """Concurrency 8 on two workers; promote at ~1/4 of the run, roll back at ~3/5."""
        from hearteye.registry import connect, plan_promotion, plan_rollback, promote, rollback
        from hearteye.settings import HearteyeSettings

        old, new = self.versions[model][0], self.versions[model][1]
        os.environ["HEARTEYE_HOME"] = str(self.home)
        registry = connect(HearteyeSettings(), probe=False)
        events: dict[str, float] = {}
        duration = max(self.duration * 2, 24.0)
        with self.ours(model, 2) as port:

            def move() -> None:
                time.sleep(self.warmup + duration * 0.25)
                plan = plan_promotion(registry, model, new)
                events["promote_at"] = time.time()
                promote(registry, model, new, force=True, reason="benchmark", plan=plan)
                events["promote_returned"] = time.time()
                time.sleep(duration * 0.35)
                plan = plan_rollback(registry, model)
                events["rollback_at"] = time.time()
                rollback(registry, model, reason="benchmark", plan=plan)
                events["rollback_returned"] = time.time()

            mover = threading.Thread(target=move)
            mover.start()
            result = run_in_process(
                "127.0.0.1", port, self._ours_requests(model), concurrency=8,
                duration_s=duration, warmup_s=self.warmup, capture=VERSION.pattern, cpu=CLIENT_CPU,
            )  # fmt: skip
            mover.join()
        # Leave the store as it was.
        from mlflow import MlflowClient

        MlflowClient(tracking_uri=self.uri).set_registered_model_alias(model, "production", old)
        samples = sorted(result.samples)

        def first_and_last(
            start: float, end: float, version: str, other: str
        ) -> dict[str, float | None]:
            after = [s for s in samples if start <= s[0] < end]
            first_new = next((s[0] for s in after if s[3] == version), None)
            last_old = max((s[0] for s in after if s[3] == other), default=None)
            return {
                "first_answer_s": None if first_new is None else first_new - start,
                "last_old_answer_s": None if last_old is None else last_old - start,
            }

        return {
            "model": model,
            "workers": 2,
            "concurrency": 8,
            "requests": result.requests,
            "failed": result.failed,
            "statuses": result.statuses,
            "errors": result.errors[:5],
            "rps": round(result.rps, 1),
            "p99_ms": round(result.percentile(99) * 1e3, 1),
            "promote": {
                "call_s": events["promote_returned"] - events["promote_at"],
                **first_and_last(events["promote_at"], events["rollback_at"], new, old),
            },
            "rollback": {
                "call_s": events["rollback_returned"] - events["rollback_at"],
                **first_and_last(events["rollback_at"], float("inf"), old, new),
            },
        }


# -- helpers ---------------------------------------------------------------------------------


@contextlib.contextmanager
def server_process(command: list[str], env: dict[str, str], logs: Path, port: int) -> Iterator[Any]:
    """Run ``command`` in a session of its own (log under ``logs``); stop its group on exit."""
    log = (logs / f"{Path(command[0]).name}-{port}.log").open("wb")
    process = subprocess.Popen(
        command, cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
    )
    try:
        yield process
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, 15)
        try:
            process.wait(60)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, 9)
            process.wait()
        log.close()


def wait_http(url: str, process: Any, timeout_s: float = 600.0) -> None:
    """Wait until ``url`` answers 200; SystemExit when ``process`` exits or time runs out."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SystemExit(f"{url}: the server exited ({process.returncode}); see its log")
        with (
            contextlib.suppress(OSError),
            urllib.request.urlopen(url, timeout=2) as response,  # noqa: S310 - loopback
        ):
            if response.status == 200:
                return
        time.sleep(0.25)
    raise SystemExit(f"{url} not ready after {timeout_s:.0f} s")


def post_json(port: int, path: str, body: str, timeout_s: float = 300.0) -> bytes:
    """POST a JSON body to the loopback server on ``port``; the answer's body."""
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}{path}",
        data=body.encode(),
        headers={"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=timeout_s) as response:  # noqa: S310 - loopback
        return bytes(response.read())


def _group_cpu_s(pgid: int) -> float:
    """User + system CPU seconds of every live process in process group ``pgid``."""
    ticks = os.sysconf("SC_CLK_TCK")
    total = 0
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[2]) == pgid:  # field 5: process group
            total += int(fields[11]) + int(fields[12])  # fields 14, 15: utime, stime
    return total / ticks


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _row(
    part: str, server: str, model: str, workers: int, concurrency: int, result: LoadResult
) -> Row:
    return Row(
        part=part,
        server=server,
        model=model,
        workers=workers,
        concurrency=concurrency,
        rps=round(result.rps, 1),
        p50_ms=round(result.percentile(50) * 1e3, 1),
        p99_ms=round(result.percentile(99) * 1e3, 1),
        requests=result.requests,
        failed=result.failed,
    )


def machine() -> dict[str, Any]:
    load = os.getloadavg()
    return {"cpus": os.cpu_count(), "loadavg_at_start": [round(x, 2) for x in load]}


def default_mitdb() -> Path:
    value = os.environ.get("HEARTEYE_MITDB_DIR")
    return Path(value) if value else REPO.parent / "shared" / "datasets" / "mitdb"
