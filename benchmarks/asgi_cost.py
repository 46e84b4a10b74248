"""The event loop's CPU per prediction request, measured in-process without HTTP or load noise.

    .venv/bin/python benchmarks/asgi_cost.py [--requests 2000] [--no-fast-path] [--profile]

Builds the real app (``create_app``, lifespan run: auth, audit writer on sqlite, micro-batcher,
metrics, JSON log) on the benchmark's store (``benchmarks/bench_serving.py`` prepares it), and
sends it prediction requests one after another as ASGI calls: the bytes a client would send,
with a bearer token. Reported: CPU of the calling thread (the event loop: middleware, routing,
auth, parsing, validation, the answer, metrics, the log record) per request, and the CPU the
other threads of the process spent meanwhile (the inference and audit threads). ``--profile``
adds a cProfile of the event loop's thread, timed by its own CPU clock (``time.thread_time``).

The HTTP parser (uvicorn + httptools) is not included: ``profile_serving.py`` sees the whole
worker under load.
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import io
import json
import os
import pstats
import sys
import threading
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from benchmarks.harness import Bench, default_mitdb  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--home", type=Path, default=REPO / ".hearteye" / "bench")
    parser.add_argument("--mitdb", type=Path, default=default_mitdb())
    parser.add_argument("--model", default="ecg-xgboost")
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--concurrency", type=int, default=16, help="requests in flight")
    parser.add_argument(
        "--no-fast-path", action="store_true", help="HEARTEYE_FAST_PATH=false (FastAPI's path)"
    )
    parser.add_argument("--profile", action="store_true")
    parser.add_argument("--top", type=int, default=35)
    args = parser.parse_args()

    bench = Bench(args.home.resolve(), args.mitdb, 1.0, 0.0)
    bench.prepare([args.model])
    home = bench.home / "asgi-cost"
    env = bench.server_env(
        HEARTEYE_HOME=str(home),
        HEARTEYE_MODELS=args.model,
        HEARTEYE_DEFAULT_MODEL=args.model,
        HEARTEYE_FAST_PATH=str(not args.no_fast_path).lower(),
    )
    os.environ.clear()
    os.environ.update(env)
    bodies = [
        json.dumps({"signal": s.tolist(), "fs": 360.0, "model": args.model}).encode()
        for s in bench.strips
    ]
    import uvloop

    uvloop.run(_run(bodies, bench.token, args))


async def _run(bodies: list[bytes], token: str, args: argparse.Namespace) -> None:
    from serving.app import create_app

    app = create_app()
    async with app.router.lifespan_context(app):
        call = _caller(app, token)
        for body in bodies * 4:  # warm-up: caches, first-use imports
            await call(body)
        others_before = _other_threads_cpu()
        profiler = cProfile.Profile(time.thread_time) if args.profile else None
        started = time.thread_time()
        if profiler is not None:
            profiler.enable()
        statuses = await _drive(call, bodies, args.requests, args.concurrency)
        if profiler is not None:
            profiler.disable()
        loop_cpu = time.thread_time() - started
        await asyncio.sleep(0.3)  # let the audit writer finish its last batch
        others = _other_threads_cpu() - others_before
    n = args.requests
    print(f"{n} requests, {args.concurrency} in flight, statuses {statuses}")
    print(f"event loop CPU per request:    {loop_cpu / n * 1e3:.3f} ms")
    print(f"other threads CPU per request: {others / n * 1e3:.3f} ms (inference, audit, log)")
    if profiler is not None:
        out = io.StringIO()
        stats = pstats.Stats(profiler, stream=out)
        stats.sort_stats("tottime").print_stats(args.top)
        stats.sort_stats("cumulative").print_stats(args.top)
        print(out.getvalue())


async def _drive(call: Any, bodies: list[bytes], n: int, concurrency: int) -> dict[int, int]:
    statuses: dict[int, int] = {}
    counter = iter(range(n))

    async def client() -> None:
        for i in counter:
            status = await call(bodies[i % len(bodies)])
            statuses[status] = statuses.get(status, 0) + 1

    await asyncio.gather(*(client() for _ in range(concurrency)))
    return statuses


def _caller(app: Any, token: str) -> Any:
    headers = [
        (b"host", b"127.0.0.1"),
        (b"content-type", b"application/json"),
        (b"authorization", f"Bearer {token}".encode()),
    ]

    async def call(body: bytes) -> int:
        scope = {
            "type": "http",
            "asgi": {"version": "3.0"},
            "http_version": "1.1",
            "method": "POST",
            "scheme": "http",
            "path": "/api/v1/predict",
            "raw_path": b"/api/v1/predict",
            "query_string": b"",
            "root_path": "",
            "headers": [*headers, (b"content-length", str(len(body)).encode())],
            "client": ("127.0.0.1", 50000),
            "server": ("127.0.0.1", 8000),
            "state": {},
        }
        sent = False
        status = 0

        async def receive() -> dict[str, Any]:
            nonlocal sent
            if sent:
                await asyncio.sleep(3600)
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}

        async def send(message: dict[str, Any]) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])

        await app(scope, receive, send)
        return status

    return call


def _other_threads_cpu() -> float:
    """CPU seconds of this process's threads other than the calling one."""
    ticks = os.sysconf("SC_CLK_TCK")
    me = str(threading.get_native_id())
    total = 0
    for task in Path(f"/proc/{os.getpid()}/task").iterdir():
        if task.name == me:
            continue
        try:
            fields = (task / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += int(fields[11]) + int(fields[12])
    return total / ticks


if __name__ == "__main__":
    main()
