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
* ``peers``: one worker each at concurrency 1, 16 and 64 (``--peer-concurrency``): ours, ``mlflow
  models serve``, and Seldon MLServer 1.7.1 (its MLflow runtime, installed by the benchmark into
  a virtualenv of its own; ``benchmarks/peers.py``) with adaptive batching off and on, on its
  MLflow-compatible ``/invocations`` and on its V2 ``/v2/models/NAME/infer``; the ratios.
* ``wrk``: the load generator against wrk (``benchmarks/wrk_check.py``) on the same server and
  configuration, ours and mlflow's, one worker, concurrency 16 (needs ``wrk``:
  ``bash scripts/ensure-system.sh wrk``).

The load generator (``benchmarks/loadgen.py``) is a raw-socket asyncio client on uvloop in a
process of its own pinned to CPU 1; the servers are not pinned. Results: a table on stdout and
JSON in ``--output``. The machine is shared: compare numbers from one run only.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from dataclasses import asdict
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.harness import MODELS, REPO, Bench, Row, default_mitdb, machine
from benchmarks.peers import ROUTES, MLServerConfig, Peers, route_path, strip_bodies

PARTS = ("floor", "overhead", "throughput", "nodelay", "swap", "peers", "wrk")
#: The parts run when none is named (``wrk`` needs the wrk binary; `make bench` installs it).
DEFAULT_PARTS = PARTS


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument(
        "parts",
        nargs="*",
        help=f"any of {', '.join(PARTS)} (default: {', '.join(DEFAULT_PARTS)})",
    )
    parser.add_argument("--home", type=Path, default=REPO / ".hearteye" / "bench")
    parser.add_argument("--mitdb", type=Path, default=default_mitdb())
    parser.add_argument("--models", default=",".join(MODELS))
    parser.add_argument("--workers", default="1,2")
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--duration", type=float, default=15.0, help="seconds measured per run")
    parser.add_argument("--warmup", type=float, default=3.0)
    parser.add_argument(
        "--peer-concurrency", default="1,16,64", help="concurrencies of the peers part"
    )
    parser.add_argument("--output", type=Path, default=None)
    args = parser.parse_args()
    parts = args.parts or list(DEFAULT_PARTS)
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
    if "peers" in parts:
        levels = [int(c) for c in args.peer_concurrency.split(",")]
        rows += run_peers(bench, models, levels, results)
    if "wrk" in parts:
        results["wrk"] = run_wrk_comparison(bench, models)
    results["machine"]["loadavg_at_end"] = [round(x, 2) for x in os.getloadavg()]
    results["rows"] = [asdict(r) for r in rows]
    output = args.output or bench.home / "results.json"
    output.write_text(json.dumps(results, indent=2))
    print(f"\nresults: {output}")


def run_peers(
    bench: Bench, models: list[str], levels: list[int], results: dict[str, Any]
) -> list[Row]:
    """Every server with one worker at every concurrency in ``levels``, model by model."""
    peers = Peers(bench)
    python = peers.venv(models)
    rows: list[Row] = []
    for model in models:
        with bench.ours(model, 1) as port:
            rows += [bench.load("peers", "hearteye", model, 1, port, c) for c in levels]
        with bench.mlflow(model, 1) as port:
            rows += [bench.load("peers", "mlflow", model, 1, port, c) for c in levels]
        for config in (MLServerConfig(batching=False), MLServerConfig(batching=True)):
            with peers.mlserver(python, model, config) as port:
                for route in ROUTES:
                    requests = peers.requests(model, route)
                    rows += [
                        bench.load("peers", f"{config.name}/{route}", model, 1, port, c, requests)
                        for c in levels
                    ]
        _print_peers([r for r in rows if r.model == model])
    results["peer_answers"] = peers.answers_checked
    return rows


def run_wrk_comparison(bench: Bench, models: list[str]) -> list[dict[str, Any]]:
    """loadgen and wrk on the same server (ours with auth, then mlflow's), concurrency 16."""
    from benchmarks.wrk_check import compare

    out = []
    for model in models:
        ours = [json.dumps({"signal": s.tolist(), "fs": 360.0, "model": model}).encode()
                for s in bench.strips]  # fmt: skip
        with bench.ours(model, 1) as port:
            out.append(
                compare(
                    bench,
                    "hearteye",
                    model,
                    port,
                    requests=None,
                    path="/api/v1/predict",
                    bodies=ours,
                    auth=f"Bearer {bench.token}",
                    concurrency=16,
                )
            )
        with bench.mlflow(model, 1) as port:
            out.append(
                compare(
                    bench,
                    "mlflow",
                    model,
                    port,
                    requests=None,
                    path=route_path("invocations", model),
                    bodies=strip_bodies(bench.strips, "invocations"),
                    auth="",
                    concurrency=16,
                )
            )
    print(
        "\n| server | model | loadgen req/s (two runs) | wrk -t1 pinned | wrk -t2 | p99 ms loadgen / wrk -t1 / wrk -t2 |"
    )
    print("|---|---|---|---|---|---|")
    for case in out:
        a, b = case["loadgen"]
        w1, w2 = case["wrk"]["wrk -t1 pinned"], case["wrk"]["wrk -t2"]
        print(
            f"| {case['server']} | {case['model']} | {a['rps']}, {b['rps']} | "
            f"{w1['rps']} ({w1['difference_vs_loadgen']:+.1%}) | "
            f"{w2['rps']} ({w2['difference_vs_loadgen']:+.1%}) | "
            f"{a['p99_ms']}, {b['p99_ms']} / {w1['p99_ms']} / {w2['p99_ms']} |"
        )
    return out


def _print_peers(rows: list[Row]) -> None:
    """req/s (p50 / p99 ms) per server and concurrency; ours over each peer."""
    levels = sorted({r.concurrency for r in rows})
    servers = list(dict.fromkeys(r.server for r in rows))
    cell = {(r.server, r.concurrency): r for r in rows}
    print(f"\n{rows[0].model}, one worker each: req/s (p50 / p99 ms), failed")
    print("| server | " + " | ".join(f"c={c}" for c in levels) + " |")
    print("|---|" + "---|" * len(levels))
    for server in servers:
        print(
            f"| {server} | "
            + " | ".join(
                f"{cell[server, c].rps} ({cell[server, c].p50_ms} / {cell[server, c].p99_ms})"
                + (f", {cell[server, c].failed} failed" if cell[server, c].failed else "")
                for c in levels
            )
            + " |"
        )
    for server in servers[1:]:
        ratios = [
            f"{cell['hearteye', c].rps / cell[server, c].rps:.1f}x" if cell[server, c].rps else "-"
            for c in levels
        ]
        print(f"| HeartEye / {server} | " + " | ".join(ratios) + " |")
    best = [
        max((cell[s, c] for s in servers if s.startswith("mlserver")), key=lambda r: r.rps)
        for c in levels
    ]
    print(
        "| HeartEye / MLServer's best | "
        + " | ".join(
            f"{cell['hearteye', c].rps / b.rps:.1f}x ({b.server})" if b.rps else "-"
            for c, b in zip(levels, best, strict=True)
        )
        + " |"
    )


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
