"""Soak (`make soak`): a long steady load through nginx, and whether anything drifts.

    .venv/bin/python benchmarks/soak.py                          # a fresh stack, 30 min at 80 %
    .venv/bin/python benchmarks/soak.py --state-dir .stack --minutes 10

Authenticated ``POST /api/v1/predict`` of 10-s MIT-BIH strips through nginx, open loop
(benchmarks/openloop.py) from ``--clients`` loopback addresses, at ``--fraction`` (0.8) of the
maximum measured first (a closed loop, ``--max-seconds``), for ``--minutes``. Every
``--sample-s`` seconds: the resident memory and open file descriptors of every serving process
(each Gunicorn master and worker, by pid), the sessions open on the stack's databases, and the
host's load average. Per minute: 2xx answers per second, errors, p50/p99 latency, the largest
worker RSS, the file descriptors, the database sessions and the load average; the first minute
is the warm-up, and "RSS growth" compares each worker's last sample with its sample at the end
of the warm-up. A markdown table on stdout, the samples as JSON (``--output``), and a plot of
throughput, p99 and RSS over time (``--plot``, default docs/images/soak.png).
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO), str(REPO / "infra" / "native")]

from benchmarks.faults import children, database_connections, loadavg, pid_of  # noqa: E402
from benchmarks.harness import default_mitdb  # noqa: E402
from benchmarks.openloop import OpenLoop, sources  # noqa: E402
from benchmarks.stack_target import measure_max, plan_of, prepare, stack  # noqa: E402


def process_sample(pid: int) -> tuple[float, int] | None:
    """(RSS in MiB, open file descriptors) of one process, None once it is gone."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
        fds = len(list(Path(f"/proc/{pid}/fd").iterdir()))
    except OSError:
        return None
    rss_kib = next(int(line.split()[1]) for line in status.splitlines() if line.startswith("VmRSS"))
    return rss_kib / 1024.0, fds


def sample(state_dir: Path, instances: list[str]) -> dict[str, Any]:
    plan_processes: dict[str, dict[str, Any]] = {}
    for name in instances:
        master = pid_of(state_dir, name)
        for role, pid in [("master", master)] + [("worker", w) for w in children(master)]:
            got = process_sample(pid)
            if got is not None:
                plan_processes[f"{name}/{role}/{pid}"] = {
                    "rss_mib": round(got[0], 1),
                    "fds": got[1],
                }
    return {
        "t": time.time(),
        "processes": plan_processes,
        "db_sessions": database_connections(plan_of(state_dir)),
        "loadavg_1m": loadavg()[0],
    }


def per_minute(
    outcomes: list[Any], samples: list[dict[str, Any]], began: float
) -> list[dict[str, Any]]:
    rows: dict[int, list[Any]] = defaultdict(list)
    for o in outcomes:
        rows[int((o.sent - began) // 60)].append(o)
    by_minute: dict[int, list[dict[str, Any]]] = defaultdict(list)
    for s in samples:
        by_minute[int((s["t"] - began) // 60)].append(s)
    table = []
    for minute in sorted(rows):
        got = rows[minute]
        ok = sorted(o.latency_s for o in got if 200 <= o.status < 300)
        last = by_minute.get(minute, [{}])[-1]
        workers = {k: v for k, v in last.get("processes", {}).items() if "/worker/" in k}
        table.append(
            {
                "minute": minute + 1,
                "rps": round(len(ok) / 60.0, 1),
                "errors": sum(1 for o in got if not 200 <= o.status < 300),
                "p50_ms": round(ok[len(ok) // 2] * 1e3, 1) if ok else None,
                "p99_ms": round(ok[int(0.99 * (len(ok) - 1))] * 1e3, 1) if ok else None,
                "max_worker_rss_mib": max((v["rss_mib"] for v in workers.values()), default=None),
                "fds": sum(v["fds"] for v in last.get("processes", {}).values()) or None,
                "db_sessions": last.get("db_sessions"),
                "loadavg_1m": last.get("loadavg_1m"),
            }
        )
    return table


def rss_growth(samples: list[dict[str, Any]], began: float, warmup_s: float) -> dict[str, float]:
    """Per worker: last RSS / RSS at the end of the warm-up - 1 (workers present in both)."""
    after = [s for s in samples if s["t"] - began >= warmup_s]
    if len(after) < 2:
        return {}
    first, last = after[0]["processes"], after[-1]["processes"]
    return {
        k: round(last[k]["rss_mib"] / first[k]["rss_mib"] - 1.0, 4)
        for k in first
        if k in last and "/worker/" in k
    }


def plot(
    table: list[dict[str, Any]], samples: list[dict[str, Any]], began: float, path: Path
) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(3, 1, figsize=(8, 7.5), sharex=True)
    minutes = [r["minute"] for r in table]
    axes[0].plot(minutes, [r["rps"] for r in table], marker="o")
    axes[0].set_ylabel("2xx answers / s")
    axes[1].plot(minutes, [r["p99_ms"] for r in table], marker="o", color="tab:red")
    axes[1].set_ylabel("p99 latency (ms)")
    series: dict[str, list[tuple[float, float]]] = defaultdict(list)
    for s in samples:
        for k, v in s["processes"].items():
            if "/worker/" in k:
                series[k].append(((s["t"] - began) / 60.0, v["rss_mib"]))
    for k, points in sorted(series.items()):
        axes[2].plot(
            [p[0] for p in points], [p[1] for p in points], label=k.replace("/worker/", " pid ")
        )
    axes[2].set_ylabel("worker RSS (MiB)")
    axes[2].set_xlabel("minute")
    if series:
        axes[2].legend(fontsize=7, ncol=2)
    fig.suptitle("make soak: predictions through nginx, open loop (shared 2-core host)")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)


def markdown(table: list[dict[str, Any]]) -> str:
    head = [
        "minute",
        "rps",
        "errors",
        "p50_ms",
        "p99_ms",
        "max_worker_rss_mib",
        "fds",
        "db_sessions",
        "loadavg_1m",
    ]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    lines += ["| " + " | ".join(str(r[h]) for h in head) + " |" for r in table]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--state-dir", type=Path, help="a running stack (default: start one)")
    parser.add_argument("--minutes", type=float, default=30.0)
    parser.add_argument("--fraction", type=float, default=0.8, help="of the measured maximum")
    parser.add_argument("--rate", type=float, help="requests/s (instead of --fraction)")
    parser.add_argument("--max-seconds", type=float, default=20.0)
    parser.add_argument("--clients", type=int, default=16)
    parser.add_argument("--sample-s", type=float, default=10.0)
    parser.add_argument("--warmup-s", type=float, default=60.0)
    parser.add_argument("--mitdb", type=Path, default=default_mitdb())
    parser.add_argument("--output", type=Path)
    parser.add_argument("--plot", type=Path, default=REPO / "docs" / "images" / "soak.png")
    args = parser.parse_args()
    with stack(args.state_dir) as state, tempfile.TemporaryDirectory() as home:
        target = prepare(state, args.mitdb, Path(home))
        out: dict[str, Any] = {"loadavg_at_start": loadavg(), "minutes": args.minutes}
        if args.rate is None:
            maximum = measure_max(target, args.max_seconds, args.clients)
            out["max_rps"] = round(maximum, 1)
            rate = maximum * args.fraction
        else:
            rate = args.rate
        out["rate"] = round(rate, 1)
        print(f"soak: {rate:.1f} requests/s for {args.minutes:g} min", file=sys.stderr)
        plan = target.plan
        instances = [f"serving-{i}" for i in range(1, len(plan.serving_ports) + 1)]
        gen = OpenLoop(
            "127.0.0.1", target.port, target.requests, rate, sources(args.clients)
        ).start()
        began = time.time()
        samples = []
        while time.time() - began < args.minutes * 60:
            samples.append(sample(state, instances))
            time.sleep(args.sample_s)
        samples.append(sample(state, instances))
        # Requests sent in the moment between the last sample and the stop: no whole minute.
        outcomes = [o for o in gen.stop().outcomes if o.sent < began + args.minutes * 60]
        table = per_minute(outcomes, samples, began)
        out |= {
            "requests": len(outcomes),
            "errors": sum(1 for o in outcomes if not 200 <= o.status < 300),
            "wrong_answers": sum(
                1
                for o in outcomes
                if o.status == 200 and o.digest != target.references[o.body_index]
            ),
            "rss_growth_after_warmup": rss_growth(samples, began, args.warmup_s),
            "per_minute": table,
            "samples": samples,
            "loadavg_at_end": loadavg(),
        }
        plot(table, samples, began, args.plot)
    print(markdown(table))
    summary = {k: v for k, v in out.items() if k not in ("samples", "per_minute")}
    print(json.dumps(summary, indent=2))
    if args.output:
        args.output.write_text(json.dumps(out, indent=2) + "\n")


if __name__ == "__main__":
    main()
