"""Benchmark: the HeartEye API against `mlflow models serve` (a script, not a test).

    .venv/bin/python benchmarks/bench_serving.py            # everything (~8 min), `make bench`
    .venv/bin/python benchmarks/bench_serving.py throughput --models ecg-xgboost --workers 1

Both sides serve the same registered version from the same store (an embedded MLflow store under
``--home``, quick-trained on first use) and get the same real 10-s MIT-BIH strips (MLII, 360 Hz,
16 DS2 records), measured one after the other in one run on this machine:

* ``floor``: in-process ``predict_strips`` per strip (no HTTP): the compute both servers pay.
* ``overhead``: our latency at concurrency 1 minus the floor (HTTP, JSON, auth, audit, log).
* ``throughput``: concurrency 16, closed loop, keep-alive; ours (Gunicorn, ``-w N``) against
  ``mlflow models serve --env-manager local -w N``; req/s, p50, p99 and the ratio.
* ``nodelay``: keep-alive latency at concurrency 1 (Kludex/uvicorn#3149): Gunicorn with the
  stock uvicorn worker on asyncio and with ours; ``mlflow models serve`` with 1 and 2 workers.
* ``swap``: concurrency 8 on two workers while ``promote`` and ``rollback`` move the alias:
  failed requests, and how long after the call the new version answered / the old one stopped.

The load generator (``benchmarks/loadgen.py``) is a raw-socket asyncio client on uvloop in a
process of its own pinned to CPU 1; the servers are not pinned. Results: a table on stdout and
JSON in ``--output``. The machine is shared: compare numbers from one run only.
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import asdict
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.harness import MODELS, REPO, Bench, Row, default_mitdb, machine

PARTS = ("floor", "overhead", "throughput", "nodelay", "swap")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("parts", nargs="*", help=f"any of {', '.join(PARTS)} (default: all)")
    parser.add_argument("--home", type=Path, default=REPO / ".hearteye" / "bench")
    parser.add_argument("--mitdb", type=Path, default=default_mitdb())
    parser.add_argument("--models", default=",".join(MODELS))
    parser.add_argument("--workers", default="1,2")
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--duration", type=float, default=15.0, help="seconds measured per run")
    parser.add_argument("--warmup", type=float, default=3.0)
    parser.add_argument("--output", type=Path, default=None)
    args = parser.parse_args()
    parts = args.parts or list(PARTS)
    if unknown := set(parts) - set(PARTS):
        parser.error(f"unknown part(s) {sorted(unknown)}: choose from {', '.join(PARTS)}")
    models = [m.strip() for m in args.models.split(",") if m.strip()]
    workers = [int(w) for w in args.workers.split(",")]

    bench = Bench(args.home.resolve(), args.mitdb, args.duration, args.warmup)
    bench.prepare(models)
    results: dict[str, Any] = {"machine": machine(), "versions": bench.versions}
    rows: list[Row] = []
    if "floor" in parts or "overhead" in parts:
        results["floor_ms"] = {m: bench.floor(m) for m in models}
        _print_floor(results["floor_ms"])
    if "overhead" in parts:
        for model in models:
            with bench.ours(model, 1) as port:
                rows.append(bench.load("overhead", "hearteye", model, 1, port, 1))
        _print_overhead(rows, results["floor_ms"])
    if "throughput" in parts:
        for model in models:
            for n in workers:
                with bench.ours(model, n) as port:
                    rows.append(
                        bench.load("throughput", "hearteye", model, n, port, args.concurrency)
                    )
                with bench.mlflow(model, n) as port:
                    rows.append(
                        bench.load("throughput", "mlflow", model, n, port, args.concurrency)
                    )
                _print_rows([r for r in rows if r.part == "throughput"])
    if "nodelay" in parts:
        rows += bench.nodelay(models[0])
        _print_rows([r for r in rows if r.part == "nodelay"])
    if "swap" in parts:
        results["swap"] = bench.swap(models[0])
        print(json.dumps(results["swap"], indent=2))
    results["rows"] = [asdict(r) for r in rows]
    output = args.output or bench.home / "results.json"
    output.write_text(json.dumps(results, indent=2))
    print(f"\nresults: {output}")


def _print_floor(floor: dict[str, dict[str, float]]) -> None:
    print("\nIn-process compute per 10-s strip (the floor)")
    for model, values in floor.items():
        print(
            f"  {model:12s} one strip per call {values['single_ms']:.2f} ms, "
            f"16 per call {values['batched16_ms']:.2f} ms/strip"
        )


def _print_overhead(rows: list[Row], floor: dict[str, dict[str, float]]) -> None:
    print("\nServing overhead at concurrency 1 (p50 minus the floor)")
    for row in rows:
        if row.part == "overhead":
            base = floor[row.model]["single_ms"]
            print(
                f"  {row.model:12s} p50 {row.p50_ms:.1f} ms = floor {base:.1f} ms + "
                f"{row.p50_ms - base:.1f} ms"
            )


def _print_rows(rows: list[Row]) -> None:
    print(
        "\n| part | server | model | workers | c | req/s | p50 ms | p99 ms | failed "
        "| CPU ms/req | ratio |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for row in rows:
        ratio = ""
        if row.server == "hearteye" and row.part == "throughput":
            theirs = [
                r
                for r in rows
                if r.server == "mlflow" and (r.model, r.workers) == (row.model, row.workers)
            ]
            if theirs and theirs[0].rps:
                ratio = f"{row.rps / theirs[0].rps:.1f}x"
        print(
            f"| {row.part} | {row.server} | {row.model} | {row.workers} | {row.concurrency} | "
            f"{row.rps} | {row.p50_ms} | {row.p99_ms} | {row.failed} | "
            f"{row.cpu_ms_per_request} | {ratio} |"
        )


if __name__ == "__main__":
    main()
