"""Faults under load (`make chaos`): the native stack keeps answering predictions while its parts die.

    .venv/bin/python benchmarks/chaos.py                        # a fresh stack, every fault (~10 min)
    .venv/bin/python benchmarks/chaos.py --state-dir .stack     # a running stack (make stack-up)
    .venv/bin/python benchmarks/chaos.py --faults worker,master --rate 40

Through nginx, as production traffic: authenticated ``POST /api/v1/predict`` of 10-s MIT-BIH strips,
open loop (benchmarks/openloop.py) at ``--rate`` requests/s (default: half the maximum measured
first: ``--max-seconds`` of a closed loop, one connection per address) from ``--clients`` loopback addresses, so that
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
import json
import os
import sys
import tempfile
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO), str(REPO / "infra" / "native")]

from benchmarks.faults import faults, json_ready, loadavg, run_phase  # noqa: E402
from benchmarks.harness import default_mitdb  # noqa: E402
from benchmarks.stack_target import measure_max, prepare, stack  # noqa: E402

FAULTS = (
    "mlflow", "s3", "postgres", "worker", "master", "nginx-reload", "nginx-restart",
    "promote-rollback",
)  # fmt: skip


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
            maximum = measure_max(target, args.max_seconds, args.clients)
            out["max_rps"] = round(maximum, 1)
            out["loadavg_after_max"] = loadavg()
            rate = maximum / 2
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
