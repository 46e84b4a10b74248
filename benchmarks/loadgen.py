"""A lean closed-loop HTTP/1.1 load generator: N keep-alive connections, each sending a request as
soon as the previous answer arrived (concurrency N), raw asyncio streams on uvloop.

Requests are rendered to bytes once; a response is read by its Content-Length (or chunks), so the
client costs a few tens of microseconds per request and measures the server, not itself. It runs
in a process of its own (``run_in_process``), optionally pinned to a CPU, so its event loop does
not share a GIL with anything else of the benchmark.

Besides status and latency it can pull one regex group out of each body (``capture``): the
hot-swap benchmark records which model version answered each request, and when.
"""

from __future__ import annotations

import asyncio
import multiprocessing as mp
import os
import re
import time
from dataclasses import dataclass, field
from typing import Any


@dataclass
class LoadResult:
    """What one run saw. Latencies in seconds; ``samples`` = (end time, latency, status, capture)."""

    duration_s: float
    latencies: list[float] = field(default_factory=list)
    statuses: dict[int, int] = field(default_factory=dict)
    errors: list[str] = field(default_factory=list)
    samples: list[tuple[float, float, int, str | None]] = field(default_factory=list)

    @property
    def requests(self) -> int:
        return len(self.latencies)

    @property
    def ok(self) -> int:
        return self.statuses.get(200, 0)

    @property
    def failed(self) -> int:
        return self.requests - self.ok + len(self.errors)

    @property
    def rps(self) -> float:
        return self.ok / self.duration_s if self.duration_s else 0.0

    def percentile(self, q: float) -> float:
        if not self.latencies:
            return float("nan")
        ordered = sorted(self.latencies)
        index = min(len(ordered) - 1, max(0, round(q / 100.0 * (len(ordered) - 1))))
        return ordered[index]


def render_post(host: str, path: str, body: bytes, headers: dict[str, str] | None = None) -> bytes:
    """One complete HTTP/1.1 POST request with a JSON body."""
    lines = [
        f"POST {path} HTTP/1.1",
        f"Host: {host}",
        "Content-Type: application/json",
        f"Content-Length: {len(body)}",
        "Connection: keep-alive",
        *(f"{k}: {v}" for k, v in (headers or {}).items()),
    ]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body


async def read_response(reader: asyncio.StreamReader) -> tuple[int, bytes]:
    status, _, body = await read_response_with_headers(reader)
    return status, body


async def read_response_with_headers(
    reader: asyncio.StreamReader,
) -> tuple[int, dict[bytes, bytes], bytes]:
    """Status, headers (lower-case names) and body of one response."""
    head = await reader.readuntil(b"\r\n\r\n")
    status_line, _, header_block = head.partition(b"\r\n")
    status = int(status_line.split(b" ", 2)[1])
    headers: dict[bytes, bytes] = {}
    for line in header_block.split(b"\r\n"):
        name, _, value = line.partition(b":")
        headers[name.strip().lower()] = value.strip()
    length = headers.get(b"content-length")
    if length is not None:
        return status, headers, await reader.readexactly(int(length))
    if b"chunked" in headers.get(b"transfer-encoding", b"").lower():
        parts = []
        while True:
            size = int((await reader.readuntil(b"\r\n")).strip().split(b";")[0], 16)
            if size == 0:
                await reader.readuntil(b"\r\n")
                return status, headers, b"".join(parts)
            parts.append(await reader.readexactly(size))
            await reader.readexactly(2)
    return status, headers, b""


async def _connection(
    host: str,
    port: int,
    requests: list[bytes],
    offset: int,
    warmup_end: float,
    stop_at: float,
    capture: re.Pattern[bytes] | None,
    result: LoadResult,
) -> None:
    reader, writer = await asyncio.open_connection(host, port)
    i = offset
    try:
        while True:
            sent = time.perf_counter()
            if sent >= stop_at:
                return
            writer.write(requests[i % len(requests)])
            i += 1
            try:
                status, body = await read_response(reader)
            except (asyncio.IncompleteReadError, ConnectionError) as exc:
                if time.perf_counter() >= warmup_end:
                    result.errors.append(f"{type(exc).__name__}: {exc}"[:200])
                writer.close()
                reader, writer = await asyncio.open_connection(host, port)
                continue
            done = time.perf_counter()
            if sent < warmup_end:
                continue
            latency = done - sent
            result.latencies.append(latency)
            result.statuses[status] = result.statuses.get(status, 0) + 1
            if capture is not None:
                match = capture.search(body)
                value = match.group(1).decode() if match else None
                result.samples.append((time.time(), latency, status, value))
    finally:
        writer.close()


async def _run(
    host: str,
    port: int,
    requests: list[bytes],
    concurrency: int,
    duration_s: float,
    warmup_s: float,
    capture: str | None,
) -> LoadResult:
    start = time.perf_counter()
    warmup_end = start + warmup_s
    stop_at = warmup_end + duration_s
    result = LoadResult(duration_s=duration_s)
    pattern = re.compile(capture.encode()) if capture else None
    await asyncio.gather(
        *(
            _connection(host, port, requests, k, warmup_end, stop_at, pattern, result)
            for k in range(concurrency)
        )
    )
    return result


def run_load(
    host: str,
    port: int,
    requests: list[bytes],
    *,
    concurrency: int,
    duration_s: float,
    warmup_s: float = 2.0,
    capture: str | None = None,
) -> LoadResult:
    """Run the load in this process (blocking)."""
    try:
        import uvloop

        runner: Any = uvloop.run
    except ImportError:  # pragma: no cover
        runner = asyncio.run
    return runner(_run(host, port, requests, concurrency, duration_s, warmup_s, capture))  # type: ignore[no-any-return]


def _child(conn: Any, cpu: int | None, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
    if cpu is not None and hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {cpu})
    try:
        conn.send(run_load(*args, **kwargs))
    except BaseException as exc:  # report instead of dying silently
        conn.send(exc)
    finally:
        conn.close()


def run_in_process(*args: Any, cpu: int | None = None, **kwargs: Any) -> LoadResult:
    """:func:`run_load` in a fresh process (pinned to ``cpu`` when given)."""
    ctx = mp.get_context("spawn")
    parent, child = ctx.Pipe(duplex=False)
    process = ctx.Process(target=_child, args=(child, cpu, args, kwargs), daemon=True)
    process.start()
    child.close()
    outcome = parent.recv()
    process.join()
    if isinstance(outcome, BaseException):
        raise outcome
    assert isinstance(outcome, LoadResult)
    return outcome
