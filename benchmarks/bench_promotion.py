"""Benchmark: how fast a promotion reaches every serving worker, and what polling costs the registry.

    .venv/bin/python benchmarks/bench_promotion.py        # every part (~5 min), `make bench-promotion`
    .venv/bin/python benchmarks/bench_promotion.py rest --promotions 20     # ~1.5 min
    .venv/bin/python benchmarks/bench_promotion.py load --promotions 20     # ~2 min
    .venv/bin/python benchmarks/bench_promotion.py rate --window 30         # ~1.5 min

One ``mlflow server`` (sqlite store under ``--home``, no auth, webhooks allowed to 127.0.0.1) and
real Gunicorn instances of the serving tier, as the native stack runs them:

* ``rest`` and ``load``: two instances of two workers sharing one webhook wake directory, woken
  by MLflow's registry webhook (registered to instance 1 only) and polling every 30 s as the
  fallback. ``--promotions`` times, ``hearteye.registry.promote`` moves ``production`` to a
  version no worker has seen (a new version number: downloaded, loaded, smoke-tested). Measured
  from the instances' logs: the webhook's arrival and the last of the four workers' swap lines
  ("serving ecg-xgboost vN"), against the start of the ``promote`` call (whose own registry
  writes, the ledger and the history, come before the alias moves). ``load``: the same under a
  closed-loop generator per instance (concurrency 4 each), with its failed requests.
* ``rate``: registry requests per instance per minute at rest (mlflow's access log over
  ``--window`` seconds), one instance of two workers polling every 2 s (no webhook), then one
  polling every 30 s with webhooks.

The machine is shared: every figure is printed with the load average of its moment.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import re
import secrets
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from benchmarks.harness import wait_http  # noqa: E402
from benchmarks.loadgen import LoadResult, render_post, run_in_process  # noqa: E402

MODEL = "ecg-xgboost"
PARTS = ("rest", "load", "rate")
STRIP_RECORDS = ("100", "105", "119", "200", "208", "213", "221", "233")
WORKERS = 2
ACCESS_LINE = re.compile(r'"(GET|POST|PATCH|PUT|DELETE) /')


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("parts", nargs="*", help=f"any of {', '.join(PARTS)} (default: all)")
    parser.add_argument("--home", type=Path, default=REPO / ".hearteye" / "bench-promotion")
    parser.add_argument("--mitdb", type=Path, default=_default_mitdb())
    parser.add_argument("--promotions", type=int, default=20, help="per phase (rest, load)")
    parser.add_argument("--window", type=float, default=30.0, help="rate: seconds per config")
    parser.add_argument("--concurrency", type=int, default=4, help="load: per instance")
    parser.add_argument("--port-base", type=int, default=18510)
    parser.add_argument("--output", type=Path, default=None)
    args = parser.parse_args()
    parts = args.parts or list(PARTS)
    if unknown := set(parts) - set(PARTS):
        parser.error(f"unknown part(s) {sorted(unknown)}: choose from {', '.join(PARTS)}")

    bench = Bench(args.home.resolve(), args.mitdb, args.port_base)
    results: dict[str, Any] = {"cpus": os.cpu_count(), "loadavg_at_start": _load()}
    bench.prepare()
    with bench.mlflow_server():
        for part in ("rest", "load"):
            if part in parts:
                results[part] = bench.promotions(args.promotions, args.concurrency, part == "load")
        if "rate" in parts:
            results["rate"] = bench.rates(args.window)
    output = args.output or bench.home / "results.json"
    output.write_text(json.dumps(results, indent=2))
    print(f"\nresults: {output}")


class Bench:
    """The store, the MLflow server, the serving instances and the load of one run."""

    def __init__(self, home: Path, mitdb: Path, port_base: int) -> None:
        self.home = home
        self.mitdb = mitdb
        self.db = home / "mlflow" / "mlflow.db"
        self.mlflow_port = port_base
        self.instance_ports = [port_base + 10, port_base + 11]
        self.server_uri = f"http://127.0.0.1:{self.mlflow_port}"
        self.logs = home / "logs"
        self.jwt_secret = secrets.token_hex(32)
        self.webhook_secret = secrets.token_hex(32)
        self.token = ""
        self.strips: list[np.ndarray] = []
        self.mlflow_log = self.logs / "mlflow-server.log"

    # -- set-up ------------------------------------------------------------------------------

    def prepare(self) -> None:
        """A quick-trained ecg-xgboost in the embedded store (first run only), strips, a user."""
        from mlflow import MlflowClient

        from hearteye.records import load_record

        self.logs.mkdir(parents=True, exist_ok=True)
        uri = f"sqlite:///{self.db}"
        client = MlflowClient(tracking_uri=uri, registry_uri=uri)
        if not _versions(client):
            from hearteye.settings import HearteyeSettings
            from training.run import train

            os.environ.update(
                HEARTEYE_HOME=str(self.home),
                HEARTEYE_MITDB_DIR=str(self.mitdb),
                MLFLOW_TRACKING_URI=uri,
            )
            print(f"quick-training {MODEL} into {self.home} ...", file=sys.stderr)
            train("xgboost", HearteyeSettings(), quick=True)
        for name in STRIP_RECORDS:
            record = load_record(self.mitdb, name)
            start = int(300 * record.fs)
            self.strips.append(np.round(record.signal[start : start + int(10 * record.fs)], 3))
        self.token = self._user_token()

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
            "bench", "clinician", secret=self.jwt_secret, issuer="hearteye",
            audience="hearteye-api", ttl_s=86_400,
        ).access_token  # fmt: skip

    def registry(self) -> Any:
        """A registry handle on the server (webhooks fire only for changes made through it)."""
        from hearteye.registry import connect
        from hearteye.settings import HearteyeSettings

        os.environ["MLFLOW_TRACKING_URI"] = self.server_uri
        os.environ["HEARTEYE_HOME"] = str(self.home)
        return connect(HearteyeSettings())

    # -- processes ---------------------------------------------------------------------------

    @contextlib.contextmanager
    def mlflow_server(self) -> Iterator[None]:
        command = [
            str(REPO / ".venv" / "bin" / "mlflow"), "server",
            "--backend-store-uri", f"sqlite:///{self.db}",
            "--default-artifact-root", str(self.home / "mlflow" / "artifacts"),
            "--host", "127.0.0.1", "--port", str(self.mlflow_port), "--workers", "1",
        ]  # fmt: skip
        env = _clean_env() | {
            "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false",
            "MLFLOW_WEBHOOK_ALLOWED_SCHEMES": "http,https",
            "MLFLOW_WEBHOOK_ALLOW_PRIVATE_IPS": "true",
            "MLFLOW_WEBHOOK_SECRET_ENCRYPTION_KEY": _fernet_key(self.home),
        }
        with _process(command, env, self.mlflow_log) as process:
            wait_http(f"{self.server_uri}/health", process, timeout_s=300.0)
            yield

    @contextlib.contextmanager
    def instances(self, ports: list[int], webhooks: bool) -> Iterator[list[Path]]:
        """Gunicorn instances of WORKERS workers; returns their log files."""
        wake = self.home / "wake"
        logs = []
        with contextlib.ExitStack() as stack:
            started = []
            for port in ports:
                env = _clean_env() | {
                    "MLFLOW_TRACKING_URI": self.server_uri,
                    "HEARTEYE_HOME": str(self.home / f"serving-{port}"),
                    "HEARTEYE_MODELS": MODEL,
                    "HEARTEYE_DEFAULT_MODEL": MODEL,
                    "HEARTEYE_WORKERS": str(WORKERS),
                    "HEARTEYE_DATABASE_URL": f"sqlite:///{self.home / 'platform.db'}",
                    "HEARTEYE_JWT_SECRET": self.jwt_secret,
                }
                if webhooks:
                    env["HEARTEYE_WEBHOOK_SECRET"] = self.webhook_secret
                    env["HEARTEYE_WEBHOOK_WAKE_DIR"] = str(wake)
                command = [
                    str(REPO / ".venv" / "bin" / "gunicorn"),
                    "-c", str(REPO / "serving" / "gunicorn.conf.py"),
                    "--bind", f"127.0.0.1:{port}", "serving.app:create_app()",
                ]  # fmt: skip
                log = self.logs / f"serving-{port}.log"
                log.unlink(missing_ok=True)
                started.append((stack.enter_context(_process(command, env, log)), port))
                logs.append(log)
            for process, port in started:
                wait_http(f"http://127.0.0.1:{port}/ready", process, timeout_s=300.0)
            yield logs

    # -- promotions --------------------------------------------------------------------------

    def promotions(self, count: int, concurrency: int, loaded: bool) -> dict[str, Any]:
        from hearteye.registry import get_production_version
        from hearteye.registry.webhooks import WEBHOOK_PATH, register_webhook

        registry = self.registry()
        client = registry.client
        versions = _versions(client)
        base = client.get_model_version(MODEL, versions[0])
        # Before any alias event: the server caches the webhooks of an event type for 60 s
        # (MLFLOW_WEBHOOK_CACHE_TTL), an empty list included.
        url = f"http://127.0.0.1:{self.instance_ports[0]}{WEBHOOK_PATH}"
        register_webhook(registry, url, self.webhook_secret)
        if get_production_version(registry, MODEL) is None:
            client.set_registered_model_alias(MODEL, "production", versions[-1])
        print(f"registering {count} new versions of {MODEL} ...", file=sys.stderr)
        fresh = [
            str(
                client.create_model_version(
                    MODEL,
                    source=base.source,
                    run_id=base.run_id,
                    tags=dict(base.tags),
                    model_id=base.model_id or base.source.removeprefix("models:/"),
                ).version
            )
            for _ in range(count)
        ]
        with self.instances(self.instance_ports, webhooks=True) as logs:
            watcher = SwapWatcher(logs)
            if not loaded:
                out = _summary([self._promote_once(registry, v, watcher) for v in fresh])
                _print_phase("at rest", out)
                return out
            loads: list[LoadResult] = []

            def load(port: int) -> None:
                loads.append(
                    run_in_process(
                        "127.0.0.1",
                        port,
                        self._requests(),
                        concurrency=concurrency,
                        duration_s=count * 4.0,
                        warmup_s=2.0,
                    )
                )

            threads = [threading.Thread(target=load, args=(port,)) for port in self.instance_ports]
            load_ends = time.time() + 2.0 + count * 4.0
            for thread in threads:
                thread.start()
            time.sleep(3.0)  # past the warm-up
            busy = [self._promote_once(registry, v, watcher) for v in fresh]
            if time.time() > load_ends:
                print("warning: the last promotions ran after the load ended", file=sys.stderr)
            print("promotions done; the load runs to its end", file=sys.stderr)
            for thread in threads:
                thread.join()
        out = _summary(busy) | {
            "concurrency": concurrency * len(self.instance_ports),
            "requests": sum(r.requests for r in loads),
            "failed": sum(r.failed for r in loads),
            "statuses": _merge(r.statuses for r in loads),
            "rps": round(sum(r.rps for r in loads), 1),
            "p99_ms": round(max(r.percentile(99) for r in loads) * 1e3, 1),
        }
        _print_phase("under load", out)
        return out

    def _promote_once(self, registry: Any, version: str, watcher: SwapWatcher) -> dict[str, Any]:
        from hearteye.registry import plan_promotion, promote

        plan = plan_promotion(registry, MODEL, version)  # the gate's artifact check: untimed
        watcher.skip_to_end()
        began = time.time()
        promote(registry, MODEL, version, force=True, reason="bench_promotion", plan=plan)
        returned = time.time()
        swapped, delivered = watcher.wait_for(
            version, WORKERS * len(self.instance_ports), timeout_s=120
        )
        return {
            "version": version,
            "call_s": round(returned - began, 3),
            "all_workers_s": round(max(swapped) - began, 3),
            "first_worker_s": round(min(swapped) - began, 3),
            "delivery_s": round(delivered - began, 3),
            "delivery_to_all_s": round(max(swapped) - delivered, 3),
            "cycle_s": time.time() - began,
            "loadavg_1m": _load()[0],
        }

    def _requests(self) -> list[bytes]:
        auth = {"Authorization": f"Bearer {self.token}"}
        return [
            render_post(
                "127.0.0.1",
                "/api/v1/predict",
                json.dumps({"signal": s.tolist(), "fs": 360.0}).encode(),
                auth,
            )
            for s in self.strips
        ]

    # -- registry requests at rest -----------------------------------------------------------

    def rates(self, window_s: float) -> dict[str, Any]:
        out = {}
        port = self.instance_ports[0]
        for label, webhooks in (("poll every 2 s", False), ("webhooks + poll every 30 s", True)):
            with self.instances([port], webhooks=webhooks):
                time.sleep(5.0)  # every worker past its start-up poll
                before = _access_lines(self.mlflow_log)
                time.sleep(window_s)
                counted = _access_lines(self.mlflow_log) - before
            per_minute = counted * 60.0 / window_s
            out[label] = {
                "requests": counted,
                "window_s": window_s,
                "per_instance_per_minute": round(per_minute, 1),
                "loadavg_1m": _load()[0],
            }
            print(
                f"registry requests at rest, {label}: {counted} in {window_s:.0f} s = "
                f"{per_minute:.1f}/min per instance ({WORKERS} workers; load {_load()[0]:.1f})"
            )
        low, high = out["webhooks + poll every 30 s"], out["poll every 2 s"]
        if low["requests"]:
            out["reduction"] = round(high["requests"] / low["requests"], 1)
            print(f"  {out['reduction']}x fewer with webhooks")
        return out


class SwapWatcher:
    """Reads the instances' JSON logs: the workers' "serving <model> v<N>" lines, and the line of
    the worker that accepted the webhook delivery for v<N>."""

    def __init__(self, logs: list[Path]) -> None:
        self.logs = logs
        self.offsets = dict.fromkeys(logs, 0)

    def skip_to_end(self) -> None:
        for log in self.logs:
            self.offsets[log] = log.stat().st_size

    def wait_for(self, version: str, workers: int, timeout_s: float) -> tuple[list[float], float]:
        """Swap times (epoch s) of ``workers`` workers to ``version``, and the delivery's time."""
        swapped = f"serving {MODEL} v{version} (run".encode()
        delivered = f"{MODEL}@production -> {version}, waking".encode()
        seen: list[float] = []
        delivery = float("nan")
        deadline = time.monotonic() + timeout_s
        while len(seen) < workers:
            for log in self.logs:
                with log.open("rb") as handle:
                    handle.seek(self.offsets[log])
                    chunk = handle.read()
                end = chunk.rfind(b"\n") + 1
                self.offsets[log] += end
                for line in chunk[:end].splitlines():
                    if swapped in line or delivered in line:
                        at = datetime.fromisoformat(json.loads(line)["time"]).timestamp()
                        if swapped in line:
                            seen.append(at)
                        else:
                            delivery = at
            if time.monotonic() > deadline:
                raise SystemExit(f"only {len(seen)} of {workers} workers swapped to v{version}")
            time.sleep(0.02)
        return seen, delivery


# -- helpers ---------------------------------------------------------------------------------


def _percentiles(values: list[float]) -> dict[str, float]:
    ordered = sorted(values)
    p95 = ordered[min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))]
    return {
        "p50": round(statistics.median(ordered), 3),
        "p95": round(p95, 3),
        "max": round(ordered[-1], 3),
    }


def _summary(trials: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "promotions": len(trials),
        "call_start_to_all_workers_s": _percentiles([t["all_workers_s"] for t in trials]),
        "delivery_to_all_workers_s": _percentiles([t["delivery_to_all_s"] for t in trials]),
        "call_start_to_delivery_s": _percentiles([t["delivery_s"] for t in trials]),
        "call_s": _percentiles([t["call_s"] for t in trials]),
        "loadavg_1m": [min(t["loadavg_1m"] for t in trials), max(t["loadavg_1m"] for t in trials)],
        "trials": trials,
    }


def _print_phase(name: str, summary: dict[str, Any]) -> None:
    def show(key: str) -> str:
        v = summary[key]
        return f"p50 {v['p50']:.3f} s, p95 {v['p95']:.3f} s, max {v['max']:.3f} s"

    print(f"\nPromotions {name} ({summary['promotions']}; load average {summary['loadavg_1m']}):")
    print(f"  webhook delivered -> every worker serving: {show('delivery_to_all_workers_s')}")
    print(f"  promote call start -> every worker:        {show('call_start_to_all_workers_s')}")
    print(f"  promote call start -> webhook delivered:   {show('call_start_to_delivery_s')}")
    print(f"  the promote call itself:                   {show('call_s')}")
    if "failed" in summary:
        print(
            f"  load: {summary['rps']} req/s, p99 {summary['p99_ms']} ms, "
            f"{summary['failed']} failed of {summary['requests']} ({summary['statuses']})"
        )


def _merge(statuses: Any) -> dict[int, int]:
    merged: dict[int, int] = {}
    for one in statuses:
        for status, n in one.items():
            merged[status] = merged.get(status, 0) + n
    return merged


def _versions(client: Any) -> list[str]:
    try:
        found = client.search_model_versions(f"name='{MODEL}'")
    except Exception:
        return []
    return sorted((str(v.version) for v in found), key=int)


def _access_lines(log: Path) -> int:
    return sum(
        1 for line in log.read_text(errors="replace").splitlines() if ACCESS_LINE.search(line)
    )


def _fernet_key(home: Path) -> str:
    """One key per bench home: webhook secrets stored by an earlier run stay readable."""
    path = home / "webhook-encryption.key"
    if not path.exists():
        from cryptography.fernet import Fernet

        path.write_bytes(Fernet.generate_key())
        path.chmod(0o600)
    return path.read_text().strip()


def _clean_env() -> dict[str, str]:
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("HEARTEYE_", "MLFLOW_", "PROMETHEUS_"))
    }
    env["PATH"] = f"{REPO / '.venv' / 'bin'}:{env.get('PATH', '')}"
    return env


@contextlib.contextmanager
def _process(command: list[str], env: dict[str, str], log: Path) -> Iterator[Any]:
    with log.open("ab") as out:
        process = subprocess.Popen(
            command, cwd=REPO, env=env, stdout=out, stderr=subprocess.STDOUT,
            start_new_session=True,
        )  # fmt: skip
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


def _load() -> list[float]:
    return [round(x, 2) for x in os.getloadavg()]


def _default_mitdb() -> Path:
    value = os.environ.get("HEARTEYE_MITDB_DIR")
    return Path(value) if value else REPO.parent / "shared" / "datasets" / "mitdb"


if __name__ == "__main__":
    main()
