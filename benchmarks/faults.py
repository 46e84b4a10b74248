"""Faults on a running native stack, and what a phase of load under a fault did (public helpers of
``make chaos`` and of its bounded CI version, tests/integration/test_chaos.py).

A fault is injected the way it happens: ``kill -9`` of a service's process group (``mlflow
server``'s uvicorn child, SeaweedFS) or of one process (a Gunicorn worker, the Gunicorn master,
nginx's master); the stack's supervisor restarts what died, as compose's restart policies do.
PostgreSQL is the machine's shared server (the native stack creates its databases there, and
other sessions use it): instead of killing it, the stack's three databases refuse connections
and every session on them is terminated (``ALTER DATABASE ... ALLOW_CONNECTIONS false`` and
``pg_terminate_backend``: to the clients that is the server gone), and come back later.

The accounting of one phase (:func:`account`): failed requests by status, wrong answers (a 200
whose content differs from the reference answer for the same strip), and the audit trail against
the 2xx answers received, by request id: missing (a 2xx without its record), and records of
requests whose answer the client never got (answered by a process killed before the bytes left).
"""

from __future__ import annotations

import json
import os
import signal
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from stack_config import StackPlan
from stack_process import http_status

from benchmarks.openloop import OpenLoop, OpenLoopResult, Outcome, sources
from benchmarks.stack_target import MODEL, Target, plan_of, sign_in_status, wait_for


def pid_of(state_dir: Path, name: str) -> int:
    """The current pid of a recorded service (the supervisor updates it after a restart)."""
    return next(p.pid for p in plan_of(state_dir).processes if p.name == name)


def children(pid: int) -> list[int]:
    out = []
    for entry in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = entry.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid and fields[0] != "Z":
            out.append(int(entry.parent.name))
    return sorted(out)


def kill_group(pgid: int) -> None:
    os.killpg(pgid, signal.SIGKILL)


def wait_restarted(
    state_dir: Path, name: str, old_pid: int, health: str, timeout_s: float
) -> float:
    """Seconds until the supervisor has a new process for ``name`` and ``health`` answers 200."""
    return wait_for(
        lambda: pid_of(state_dir, name) != old_pid and http_status(health) == 200, timeout_s, 0.2
    )


# --- PostgreSQL ------------------------------------------------------------------------------


def set_databases_reachable(plan: StackPlan, reachable: bool) -> None:
    """Let the stack's databases accept connections again, or refuse them and end every session
    on them (the shared server keeps running for everyone else)."""
    import psycopg2
    from psycopg2 import sql

    conn = psycopg2.connect(plan.pg_admin_url)
    try:
        conn.autocommit = True
        with conn.cursor() as cur:
            for db in plan.databases.values():
                cur.execute(
                    sql.SQL("ALTER DATABASE {} ALLOW_CONNECTIONS {}").format(
                        sql.Identifier(db), sql.SQL("true" if reachable else "false")
                    )
                )
            if not reachable:
                cur.execute(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = ANY(%s)",
                    (list(plan.databases.values()),),
                )
    finally:
        conn.close()


def database_connections(plan: StackPlan) -> int:
    """Sessions open on the stack's databases (the soak's connection count)."""
    import psycopg2

    conn = psycopg2.connect(plan.pg_admin_url)
    try:
        with conn.cursor() as cur:
            cur.execute(
                "SELECT count(*) FROM pg_stat_activity WHERE datname = ANY(%s)",
                (list(plan.databases.values()),),
            )
            return int(cur.fetchone()[0])
    finally:
        conn.close()


def audit_rows(plan: StackPlan, username: str) -> dict[str, tuple[int, float]]:
    """``{request_id: (status, occurred_at as a Unix time)}`` of one user's audit records."""
    import psycopg2

    conn = psycopg2.connect(plan.database_url("platform", driver="postgresql"))
    try:
        with conn.cursor() as cur:
            cur.execute(
                "SELECT request_id, status_code, extract(epoch from occurred_at) "
                "FROM prediction_audit WHERE username = %s",
                (username,),
            )
            return {r[0]: (int(r[1]), float(r[2])) for r in cur.fetchall()}
    finally:
        conn.close()


# --- one phase's accounting ------------------------------------------------------------------


@dataclass
class PhaseReport:
    """What one phase of load under one fault did (JSON-ready)."""

    fault: str
    requests: int
    ok: int
    failed: dict[str, int]  # status ("0" = no HTTP answer) -> count
    retried: int  # sent again after a keep-alive connection closed unanswered (openloop.py)
    failed_window_s: float  # first to last failed request's send time (0 when none failed)
    recovered_s: float  # fault to the service's health back (supervisor restart included)
    wrong_answers: int  # 200s whose content differs from the reference for the same strip
    rps: float
    p99_ms: float
    audit_missing: int  # 2xx answers received without an audit record
    audit_unanswered: int  # records of requests whose answer never reached the client
    audit_unanswered_2xx: int  # ... of them, recorded as answered (2xx)
    versions: dict[str, int] = field(default_factory=dict)  # model version -> 200s
    notes: list[str] = field(default_factory=list)


def settle_audit(
    plan: StackPlan, username: str, ok_ids: set[str], timeout_s: float
) -> dict[str, tuple[int, float]]:
    """Wait until every 2xx request id has its audit record (spooled records are replayed once
    the database is back, after the writer's back-off), or ``timeout_s``; return the records."""
    deadline = time.monotonic() + timeout_s
    while True:
        rows = audit_rows(plan, username)
        if ok_ids <= rows.keys() or time.monotonic() > deadline:
            return rows
        time.sleep(1.0)


def account(
    fault: str,
    outcomes: list[Outcome],
    references: list[str],
    rows: dict[str, tuple[int, float]],
    window: tuple[float, float],
    recovered_s: float,
    duration_s: float,
) -> PhaseReport:
    """The phase's figures; ``rows`` are the user's audit records, ``window`` the phase's span
    (Unix times) within which a record belongs to this phase."""
    ok = [o for o in outcomes if 200 <= o.status < 300]
    bad = [o for o in outcomes if not 200 <= o.status < 300]
    ok_ids = {o.request_id for o in ok}
    answered_ids = {o.request_id for o in outcomes if o.request_id}
    wrong = sum(1 for o in ok if o.status == 200 and o.digest != references[o.body_index])
    in_window = {rid: v for rid, v in rows.items() if window[0] <= v[1] <= window[1]}
    unanswered = {rid: v for rid, v in in_window.items() if rid not in answered_ids}
    latencies = sorted(o.latency_s for o in ok)
    failed_times = [o.sent for o in bad]
    return PhaseReport(
        fault=fault,
        requests=len(outcomes),
        ok=len(ok),
        failed=dict(Counter(str(o.status) for o in bad)),
        retried=sum(1 for o in outcomes if o.retried),
        failed_window_s=round(max(failed_times) - min(failed_times), 2) if failed_times else 0.0,
        recovered_s=round(recovered_s, 2),
        wrong_answers=wrong,
        rps=round(len(ok) / duration_s, 1) if duration_s else 0.0,
        p99_ms=round(latencies[int(0.99 * (len(latencies) - 1))] * 1e3, 1) if latencies else 0.0,
        audit_missing=len(ok_ids - rows.keys()),
        audit_unanswered=len(unanswered),
        audit_unanswered_2xx=sum(1 for s, _ in unanswered.values() if 200 <= s < 300),
        versions=dict(Counter(o.version for o in ok)),
    )


def errors_sample(outcomes: Iterable[Outcome], n: int = 3) -> list[str]:
    return list(dict.fromkeys(o.error for o in outcomes if o.error))[:n]


def loadavg() -> list[float]:
    return [round(x, 2) for x in os.getloadavg()]


def json_ready(report: PhaseReport) -> dict[str, Any]:
    from dataclasses import asdict

    out = asdict(report)
    if out["recovered_s"] == float("inf"):
        out["recovered_s"] = None
    return out


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
    # Before the first request: a record stamped earlier (the references, an earlier phase's
    # tail) is not this phase's. Same host, same clock.
    began = time.time()
    gen = OpenLoop("127.0.0.1", target.port, target.requests, rate, sources(clients)).start()
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
        fault, result.outcomes, target.references, rows, (began, ended + 31.0),
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
