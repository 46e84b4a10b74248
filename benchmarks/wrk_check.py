"""The benchmark's load generator against an independent one (wrk, Debian's package) on the same
server, configuration and strips, back to back: loadgen, wrk pinned like loadgen (``-t1`` on the
client CPU), wrk as the issue ran it (``-t2``, unpinned), loadgen again.

``benchmarks/wrk_post.lua`` POSTs the same bodies round-robin with the same Authorization header
and prints wrk's figures as JSON; wrk has no warm-up, so it runs right after a loadgen run.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

from benchmarks.harness import CLIENT_CPU, REPO, Bench, Row

LUA = REPO / "benchmarks" / "wrk_post.lua"
#: (label, threads, pinned to the load generator's CPU)
WRK_RUNS = (("wrk -t1 pinned", 1, True), ("wrk -t2", 2, False))


def wrk_binary() -> str:
    found = shutil.which("wrk")
    if not found:
        raise SystemExit("wrk is not installed: bash scripts/ensure-system.sh wrk")
    return found


def run_wrk(
    port: int, path: str, bodies: list[bytes], auth: str, *, threads: int, pinned: bool,
    concurrency: int, duration_s: float, scratch: Path,
) -> dict[str, Any]:  # fmt: skip
    """One wrk run; its requests per second (2xx only), p50/p99 and errors."""
    body_file = scratch / "wrk-bodies.jsonl"
    body_file.write_bytes(b"\n".join(bodies) + b"\n")
    command = [
        wrk_binary(), f"-t{threads}", f"-c{concurrency}", f"-d{round(duration_s)}s",
        "--timeout", "10s", "-s", str(LUA), f"http://127.0.0.1:{port}",
        "--", str(body_file), path, auth,
    ]  # fmt: skip
    if pinned:
        command = ["taskset", "-c", str(CLIENT_CPU), *command]
    out = subprocess.run(command, check=True, capture_output=True, text=True).stdout
    line = next(x for x in out.splitlines() if x.startswith("WRK_JSON "))
    raw = json.loads(line.removeprefix("WRK_JSON "))
    errors = sum(raw[k] for k in ("connect", "read", "write", "status", "timeout"))
    ok = raw["requests"] - raw["status"]
    return {
        "command": " ".join(command),
        "rps": round(ok / (raw["duration_us"] / 1e6), 1),
        "p50_ms": round(raw["p50_us"] / 1e3, 1),
        "p99_ms": round(raw["p99_us"] / 1e3, 1),
        "requests": raw["requests"],
        "failed": errors,
    }


def compare(
    bench: Bench, server: str, model: str, port: int, *, requests: list[bytes] | None,
    path: str, bodies: list[bytes], auth: str, concurrency: int,
) -> dict[str, Any]:  # fmt: skip
    """loadgen, the wrk runs, loadgen again on one running server; the differences in req/s."""
    first: Row = bench.load("wrk", server, model, 1, port, concurrency, requests)
    runs: dict[str, Any] = {}
    for label, threads, pinned in WRK_RUNS:
        runs[label] = run_wrk(
            port, path, bodies, auth, threads=threads, pinned=pinned,
            concurrency=concurrency, duration_s=bench.duration, scratch=bench.home,
        )  # fmt: skip
        print(f"  wrk        {server:8s} {model:12s} {label}: {runs[label]}", file=sys.stderr)
    second: Row = bench.load("wrk", server, model, 1, port, concurrency, requests)
    loadgen_rps = (first.rps + second.rps) / 2
    for run in runs.values():
        run["difference_vs_loadgen"] = round(run["rps"] / loadgen_rps - 1, 3)
    return {
        "server": server,
        "model": model,
        "concurrency": concurrency,
        "loadgen": [first.__dict__, second.__dict__],
        "loadgen_rps_mean": round(loadgen_rps, 1),
        "wrk": runs,
    }
