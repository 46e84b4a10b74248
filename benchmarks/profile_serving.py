"""Where a HeartEye worker spends its CPU under load: per thread, and per function (py-spy).

    pip install --target /tmp/pyspy py-spy      # a scratch directory, not the project's venv
    .venv/bin/python benchmarks/profile_serving.py --py-spy /tmp/pyspy/bin/py-spy \\
        [--model ecg-xgboost] [--concurrency 16] [--duration 15] [--no-fast-path]

One Gunicorn worker (the production configuration, as ``bench_serving.py throughput`` starts it)
under the same closed-loop load. It reports

* the worker's CPU per answered request, split by thread (``/proc/<pid>/task``: the event loop,
  the micro-batcher, the audit writer, the log writer, the thread pool, ...);
* with ``--py-spy``: py-spy's non-idle samples of the worker (all threads) folded into the
  functions that cost the most, by self time and by inclusive time, in ms per request.

A script, not a test; the machine is shared, so read the shares rather than absolute numbers.
"""

from __future__ import annotations

import argparse
import collections
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from benchmarks.harness import CLIENT_CPU, Bench, default_mitdb  # noqa: E402
from benchmarks.loadgen import run_in_process  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--home", type=Path, default=REPO / ".hearteye" / "bench")
    parser.add_argument("--mitdb", type=Path, default=default_mitdb())
    parser.add_argument("--model", default="ecg-xgboost")
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--duration", type=float, default=15.0)
    parser.add_argument("--warmup", type=float, default=3.0)
    parser.add_argument("--py-spy", type=Path, default=None, help="py-spy executable")
    parser.add_argument(
        "--gil", action="store_true", help="sample only the thread holding the GIL (CPU, not waits)"
    )
    parser.add_argument(
        "--no-fast-path", action="store_true", help="HEARTEYE_FAST_PATH=false (FastAPI's path)"
    )
    parser.add_argument("--top", type=int, default=40)
    parser.add_argument("--raw", type=Path, default=None, help="keep py-spy's folded stacks here")
    args = parser.parse_args()

    bench = Bench(args.home.resolve(), args.mitdb, args.duration, args.warmup)
    bench.prepare([args.model])
    requests = bench._ours_requests(args.model)
    raw = args.raw or bench.home / "profile.folded"
    fast_path = str(not args.no_fast_path).lower()
    with bench.ours(args.model, 1, HEARTEYE_FAST_PATH=fast_path) as port:
        worker = _only_child(bench.server_group)
        before: dict[int, tuple[str, float]] = {}
        after: dict[int, tuple[str, float]] = {}
        spy: subprocess.Popen[bytes] | None = None

        def measure() -> None:
            nonlocal spy
            time.sleep(args.warmup)
            before.update(_thread_cpu(worker))
            if args.py_spy is not None:
                command = [str(args.py_spy), "record", "--pid", str(worker), "--format", "raw"]
                command += ["--threads", "--rate", "250", "--nonblocking", "--output", str(raw)]
                command += ["--duration", str(int(args.duration))]
                command += ["--gil"] if args.gil else []
                spy = subprocess.Popen(
                    command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
                )
            time.sleep(args.duration)
            after.update(_thread_cpu(worker))

        sampler = threading.Thread(target=measure)
        sampler.start()
        result = run_in_process(
            "127.0.0.1", port, requests, concurrency=args.concurrency,
            duration_s=args.duration, warmup_s=args.warmup, cpu=CLIENT_CPU,
        )  # fmt: skip
        sampler.join()
        if spy is not None:
            spy.wait(60)
    answered = max(result.ok, 1)
    print(
        f"{args.model}, 1 worker, concurrency {args.concurrency}: {result.rps:.1f} req/s, "
        f"p50 {result.percentile(50) * 1e3:.1f} ms, p99 {result.percentile(99) * 1e3:.1f} ms, "
        f"{result.failed} failed"
    )
    _print_threads(before, after, answered)
    if args.py_spy is not None and raw.exists():
        _print_functions(raw, answered, args.top)


def _only_child(pgid: int) -> int:
    """The worker: the one process of the group that is not the Gunicorn master."""
    for _ in range(100):
        children = [
            int(p.name)
            for p in Path("/proc").glob("[0-9]*")
            if _stat(p / "stat")[2:4] == [str(pgid), str(pgid)] and int(p.name) != pgid
        ]
        if children:
            return children[0]
        time.sleep(0.1)
    raise SystemExit("no worker process found")


def _stat(path: Path) -> list[str]:
    try:
        return path.read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return []


def _thread_cpu(pid: int) -> dict[int, tuple[str, float]]:
    """Per thread id: (name, user + system CPU seconds)."""
    ticks = os.sysconf("SC_CLK_TCK")
    out = {}
    for task in Path(f"/proc/{pid}/task").iterdir():
        fields = _stat(task / "stat")
        if not fields:
            continue
        name = (task / "comm").read_text().strip()
        out[int(task.name)] = (name, (int(fields[11]) + int(fields[12])) / ticks)
    return out


def _print_threads(
    before: dict[int, tuple[str, float]], after: dict[int, tuple[str, float]], answered: int
) -> None:
    rows = []
    for tid, (name, cpu) in after.items():
        spent = cpu - before.get(tid, (name, 0.0))[1]
        if spent > 0:
            rows.append((spent, tid, name))
    total = sum(r[0] for r in rows)
    print(f"\nworker CPU per answered request: {total / answered * 1e3:.2f} ms")
    for spent, tid, name in sorted(rows, reverse=True):
        print(f"  {spent / answered * 1e3:6.2f} ms  thread {tid} ({name})")


def _print_functions(raw: Path, answered: int, top: int) -> None:
    """py-spy samples folded to functions: self and inclusive ms per request."""
    self_samples: collections.Counter[str] = collections.Counter()
    inclusive: collections.Counter[str] = collections.Counter()
    threads: collections.Counter[str] = collections.Counter()
    total = 0
    for line in raw.read_text().splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack:
            continue
        count = int(count_text)
        frames = stack.split(";")
        total += count
        threads[frames[0]] += count
        seen = set()
        for frame in frames[1:]:
            key = _short(frame)
            if key not in seen:
                inclusive[key] += count
                seen.add(key)
        self_samples[_short(frames[-1])] += count
    if not total:
        print("no samples")
        return
    # The samples cover the worker's busy time: scale them to its CPU per request.
    print(f"\npy-spy: {total} non-idle samples; shares of the worker's busy samples")
    for name, count in threads.most_common():
        print(f"  {100 * count / total:5.1f} %  {name}")
    for title, counter in (("self", self_samples), ("inclusive", inclusive)):
        print(f"\ntop {top} by {title} time (% of busy samples)")
        for name, count in counter.most_common(top):
            print(f"  {100 * count / total:5.1f} %  {name}")


def _short(frame: str) -> str:
    """``function (path/to/file.py:123)`` -> ``function (file.py)`` keyed without line numbers."""
    name, _, where = frame.partition(" (")
    path = where.rstrip(")").rsplit(":", 1)[0]
    parts = Path(path).parts
    short = "/".join(parts[-2:]) if parts else path
    return f"{name} ({short})"


if __name__ == "__main__":
    main()
