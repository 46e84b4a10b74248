"""Faults under load (`make chaos`): the native stack keeps answering predictions while its parts die.

    .venv/bin/python benchmarks/chaos.py                        # a fresh stack, every fault (~10 min)
    .venv/bin/python benchmarks/chaos.py --state-dir .stack     # a running stack (make stack-up)
    .venv/bin/python benchmarks/chaos.py --faults worker,master --rate 40

Through nginx, as production traffic: authenticated ``POST /api/v1/predict`` of 10-s MIT-BIH strips,
open loop (benchmarks/openloop.py) at ``--rate`` requests/s (default: half the maximum measured
first, ``--max-seconds`` of an offered overload) from ``--clients`` loopback addresses, so that
nginx's 50 requests/s per address applies to each client honestly. For each fault in turn (a
phase: ``--before`` seconds of load, the fault, the load until the service is back, ``--after``
seconds more): failed requests by status, time to recover, wrong answers (compared with the
reference answer of the same strip, taken at rest), and the audit trail counted in the platform
database by request id (benchmarks/faults.py says what each fault does and what is counted).

Faults: mlflow, s3 (kill -9 of the process group: the supervisor restarts it), postgres (the
stack's databases unreachable for ``--db-outage`` seconds; one sign-in is tried meanwhile),
worker (kill -9 of one Gunicorn worker), master (kill -9 of one Gunicorn master),
nginx-reload (SIGHUP), nginx-restart (kill -9 of nginx's master), promote-rollback (a new
version promoted, then rolled back, under load). Prints one JSON document (``--output`` too).
The machine is shared: the load average is printed with every phase.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import signal
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO), str(REPO / "infra" / "native")]

import httpx  # noqa: E402
import numpy as np  # noqa: E402

from benchmarks.faults import (  # noqa: E402
    PhaseReport,
    account,
    children,
    errors_sample,
    json_ready,
    kill_group,
    loadavg,
    pid_of,
    plan_of,
    set_databases_reachable,
    settle_audit,
    wait_for,
    wait_restarted,
)
from benchmarks.harness import default_mitdb  # noqa: E402
from benchmarks.loadgen import render_post  # noqa: E402
from benchmarks.openloop import OpenLoop, OpenLoopResult, answer_digest, sources  # noqa: E402

MODEL = "ecg-xgboost"
STRIP_RECORDS = ("100", "105", "119", "200", "208", "213", "221", "233")
FAULTS = (
    "mlflow", "s3", "postgres", "worker", "master", "nginx-reload", "nginx-restart",
    "promote-rollback",
)  # fmt: skip
PASSWORD = "chaos-password-0001"  # noqa: S105 - a throwaway user of a test stack


@dataclass
class Target:
    """A stack with a production model, a user and its token, the strips and their answers."""

    state_dir: Path
    url: str
    port: int
    username: str
    token: str
    requests: list[bytes]
    references: list[str]
    versions: list[str]  # [production, spare]: the spare is promoted then rolled back

    @property
    def plan(self) -> Any:
        return plan_of(self.state_dir)


# --- set-up ------------------------------------------------------------------------------------


@contextlib.contextmanager
def stack(state_dir: Path | None) -> Iterator[Path]:
    """A running stack's state dir, or a fresh stack for the run (stopped at the end)."""
    if state_dir is not None:
        yield state_dir.resolve()
        return
    import hearteye_stack

    from benchmarks.harness import _free_port

    state = Path(tempfile.mkdtemp(prefix="hearteye-chaos-"))
    settings = hearteye_stack.settings_from_env(state_dir=state, http_port=_free_port())
    hearteye_stack.up(settings)
    try:
        yield state
    finally:
        hearteye_stack.down(state)


def mlflow_env(state_dir: Path, home: Path) -> None:
    plan = plan_of(state_dir)
    os.environ.update(
        MLFLOW_TRACKING_URI=f"{plan.url}/mlflow",
        MLFLOW_TRACKING_USERNAME=plan.admin_username,
        MLFLOW_TRACKING_PASSWORD=plan.admin_password,
        HEARTEYE_HOME=str(home),
    )
    os.environ.pop("MLFLOW_REGISTRY_URI", None)


def prepare(state_dir: Path, mitdb: Path, home: Path) -> Target:
    """A quick-trained ecg-xgboost in production (trained once per stack), a spare version of
    it, a clinician signed in through nginx, the strips and their reference answers."""
    from hearteye.registry import ModelNotFoundError, connect, get_production_version, promote
    from hearteye.settings import HearteyeSettings, get_settings

    plan = plan_of(state_dir)
    mlflow_env(state_dir, home)
    os.environ["HEARTEYE_MITDB_DIR"] = str(mitdb)
    get_settings.cache_clear()
    registry = connect(HearteyeSettings())
    client = registry.client
    try:
        production = get_production_version(registry, MODEL)
    except ModelNotFoundError:
        production = None
    if production is None:
        from training.run import train

        print("quick-training ecg-xgboost on the stack ...", file=sys.stderr)
        production = str(train("xgboost", HearteyeSettings(), quick=True).version)
        promote(registry, MODEL, production, force=True, reason="chaos: quick-trained model")
    mv = client.get_model_version(MODEL, production)
    spare = str(
        client.create_model_version(
            MODEL, source=mv.source, run_id=mv.run_id, tags=dict(mv.tags),
            model_id=mv.model_id or mv.source.removeprefix("models:/"),
        ).version
    )  # fmt: skip
    username = add_clinician(plan)
    token = sign_in(plan.url, username)
    strips = load_strips(mitdb)
    auth = {"Authorization": f"Bearer {token}"}
    bodies = [json.dumps({"signal": s.tolist(), "fs": 360.0}).encode() for s in strips]
    host = f"127.0.0.1:{plan.http_port}"
    requests = [render_post(host, "/api/v1/predict", b, auth) for b in bodies]
    ready = wait_for(lambda: httpx.get(f"{plan.url}/ready").status_code == 200, 300, 1.0)
    if ready == float("inf"):
        raise SystemExit("the serving tier never became ready")
    references = []
    with httpx.Client(base_url=plan.url, headers=auth, timeout=60) as http:
        for body in bodies:
            response = http.post(
                "/api/v1/predict", content=body, headers={"Content-Type": "application/json"}
            )
            response.raise_for_status()
            references.append(answer_digest(response.content))
    return Target(
        state_dir, plan.url, plan.http_port, username, token, requests, references,
        [production, spare],
    )  # fmt: skip


def add_clinician(plan: Any) -> str:
    from argon2 import PasswordHasher

    from hearteye_platform.db import create_db_engine, create_session_factory
    from hearteye_platform.identity import UserStore

    username = f"chaos-{os.urandom(3).hex()}"
    engine = create_db_engine(plan.platform_app_url, pooled=False)
    users = UserStore(create_session_factory(engine), hasher=PasswordHasher(time_cost=1))
    users.add(username, "clinician", PASSWORD)
    engine.dispose()
    return username


def sign_in(url: str, username: str, source: str = "127.0.0.250") -> str:
    transport = httpx.HTTPTransport(local_address=source)
    with httpx.Client(base_url=url, transport=transport, timeout=30) as http:
        response = http.post(
            "/api/v1/auth/token", data={"username": username, "password": PASSWORD}
        )
    response.raise_for_status()
    return str(response.json()["access_token"])


def sign_in_status(url: str, username: str, source: str) -> int:
    transport = httpx.HTTPTransport(local_address=source)
    with httpx.Client(base_url=url, transport=transport, timeout=30) as http:
        return http.post(
            "/api/v1/auth/token", data={"username": username, "password": PASSWORD}
        ).status_code


def load_strips(mitdb: Path) -> list[np.ndarray]:
    from hearteye.records import load_record

    strips = []
    for name in STRIP_RECORDS:
        record = load_record(mitdb, name)
        start = int(300 * record.fs)
        strips.append(np.round(record.signal[start : start + int(10 * record.fs)], 3))
    return strips


# --- load --------------------------------------------------------------------------------------


def measure_max(target: Target, seconds: float, clients: int) -> float:
    """2xx answers per second under an offered overload (1,000 requests/s)."""
    gen = OpenLoop(
        "127.0.0.1", target.port, target.requests, 1000.0, sources(clients), timeout_s=10
    )
    gen.start()
    time.sleep(seconds)
    result = gen.stop()
    ok = [o for o in result.outcomes if o.status == 200]
    if not ok:
        raise SystemExit(f"no request succeeded while measuring the maximum: {result.outcomes[:3]}")
    span = max(o.sent + o.latency_s for o in ok) - min(o.sent for o in result.outcomes)
    return len(ok) / span


def run_phase(
    target: Target,
    fault: str,
    inject: Callable[[list[str]], float],
    rate: float,
    clients: int,
    before_s: float,
    after_s: float,
) -> PhaseReport:
    """Load, ``inject(notes)`` (returns the seconds to recovery), more load; the accounting."""
    gen = OpenLoop("127.0.0.1", target.port, target.requests, rate, sources(clients)).start()
    began = time.time()
    time.sleep(before_s)
    load_at_fault = loadavg()
    notes: list[str] = []
    recovered_s = inject(notes)
    time.sleep(after_s)
    result: OpenLoopResult = gen.stop()
    ended = time.time()
    ok_ids = {o.request_id for o in result.outcomes if 200 <= o.status < 300}
    rows = settle_audit(target.plan, target.username, ok_ids, timeout_s=90.0)
    report = account(
        fault, result.outcomes, target.references, rows, (began - 1.0, ended + 31.0),
        recovered_s, ended - began,
    )  # fmt: skip
    report.notes = [*notes, f"load average at the fault: {load_at_fault}"]
    if errs := errors_sample(result.outcomes):
        report.notes.append(f"client errors: {errs}")
    print(json.dumps(json_ready(report)), file=sys.stderr)
    return report


# --- faults ------------------------------------------------------------------------------------


def faults(target: Target, db_outage_s: float) -> dict[str, Callable[[list[str]], float]]:
    state = target.state_dir
    plan = target.plan
    mlflow_health = f"{plan.mlflow_direct_uri}/health"
    s3_health = f"{plan.s3_endpoint}/healthz"
    serving_1 = f"http://127.0.0.1:{plan.serving_ports[0]}/ready"

    def kill_service(name: str, health: str, whole_group: bool) -> Callable[[list[str]], float]:
        def inject(notes: list[str]) -> float:
            pid = pid_of(state, name)
            t0 = time.monotonic()
            if whole_group:
                kill_group(pid)
            else:
                os.kill(pid, signal.SIGKILL)
            back = wait_restarted(state, name, pid, health, 300)
            notes.append(f"{name} back (restarted, healthy) after {back:.1f} s")
            return time.monotonic() - t0

        return inject

    def postgres(notes: list[str]) -> float:
        t0 = time.monotonic()
        set_databases_reachable(plan, False)
        time.sleep(db_outage_s / 2)
        status = sign_in_status(target.url, target.username, "127.0.0.251")
        time.sleep(db_outage_s / 2)
        set_databases_reachable(plan, True)
        notes.append(f"sign-in while the databases were down: {status}")
        return time.monotonic() - t0

    def worker(notes: list[str]) -> float:
        master = pid_of(state, "serving-1")
        before = children(master)
        t0 = time.monotonic()
        os.kill(before[0], signal.SIGKILL)
        back = wait_for(
            lambda: (
                len(set(children(master)) - {before[0]}) >= len(before)
                and http_status_ok(serving_1)
            ),
            120,
        )
        notes.append(f"killed worker {before[0]} of {before}; all workers back after {back:.1f} s")
        return time.monotonic() - t0

    def nginx_reload(notes: list[str]) -> float:
        t0 = time.monotonic()
        os.kill(pid_of(state, "nginx"), signal.SIGHUP)
        wait_for(lambda: http_status_ok(f"{target.url}/"), 60)
        return time.monotonic() - t0

    def promote_rollback(notes: list[str]) -> float:
        from hearteye.registry import connect, promote, rollback
        from hearteye.settings import HearteyeSettings

        registry = connect(HearteyeSettings())
        t0 = time.monotonic()
        promote(registry, MODEL, target.versions[1], force=True, reason="chaos: promote under load")
        time.sleep(10)
        rollback(registry, MODEL, target.versions[0], reason="chaos: roll back under load")
        notes.append(f"v{target.versions[1]} promoted, v{target.versions[0]} restored 10 s later")
        return time.monotonic() - t0

    return {
        "mlflow": kill_service("mlflow", mlflow_health, whole_group=True),
        "s3": kill_service("seaweedfs", s3_health, whole_group=True),
        "postgres": postgres,
        "worker": worker,
        "master": kill_service("serving-1", serving_1, whole_group=False),
        "nginx-reload": nginx_reload,
        "nginx-restart": kill_service("nginx", f"{target.url}/", whole_group=False),
        "promote-rollback": promote_rollback,
    }


def http_status_ok(url: str) -> bool:
    from stack_process import http_status

    return http_status(url) == 200


# --- main --------------------------------------------------------------------------------------


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--state-dir", type=Path, help="a running stack (default: start one)")
    parser.add_argument("--faults", default=",".join(FAULTS), help="comma-separated, in order")
    parser.add_argument("--rate", type=float, help="requests/s (default: half the maximum)")
    parser.add_argument("--max-seconds", type=float, default=15.0, help="to measure the maximum")
    parser.add_argument("--clients", type=int, default=16, help="client addresses")
    parser.add_argument("--before", type=float, default=5.0, help="seconds of load before")
    parser.add_argument("--after", type=float, default=10.0, help="seconds after recovery")
    parser.add_argument("--db-outage", type=float, default=20.0, help="postgres: seconds down")
    parser.add_argument("--mitdb", type=Path, default=default_mitdb())
    parser.add_argument("--output", type=Path)
    args = parser.parse_args()
    chosen = [f for f in args.faults.split(",") if f]
    if unknown := set(chosen) - set(FAULTS):
        parser.error(f"unknown fault(s) {sorted(unknown)}: choose from {', '.join(FAULTS)}")
    with stack(args.state_dir) as state, tempfile.TemporaryDirectory() as home:
        target = prepare(state, args.mitdb, Path(home))
        out: dict[str, Any] = {"loadavg_at_start": loadavg(), "cpus": os.cpu_count()}
        if args.rate is None:
            maximum = measure_max(target, args.max_seconds, max(args.clients, 32))
            out["max_rps"] = round(maximum, 1)
            out["loadavg_after_max"] = loadavg()
            rate = maximum / 2
            time.sleep(5)  # let the overload's queue drain
        else:
            rate = args.rate
        out["rate"] = round(rate, 1)
        print(f"offered load: {rate:.1f} requests/s from {args.clients} addresses", file=sys.stderr)
        injectors = faults(target, args.db_outage)
        out["phases"] = [
            json_ready(
                run_phase(target, f, injectors[f], rate, args.clients, args.before, args.after)
            )
            for f in chosen
        ]
        out["loadavg_at_end"] = loadavg()
    text = json.dumps(out, indent=2)
    print(text)
    if args.output:
        args.output.write_text(text + "\n")


if __name__ == "__main__":
    main()
