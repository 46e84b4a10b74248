"""An open-loop HTTP/1.1 load generator from several client addresses, for faults and soaks.

Requests leave on a fixed schedule (``rate`` per second in all, spread evenly over the source
addresses), whether or not earlier ones were answered: a stalled server does not slow the
offered load down, as it would a closed loop (loadgen.py). Each source address (127.0.0.2,
127.0.0.3, ...: the whole 127/8 is loopback on Linux) keeps its own pool of keep-alive
connections, so nginx's per-address rate limit (50 requests/s) applies to each client as it
would to real clients. A request that finds no idle connection opens one.

Every request is recorded: send time, latency, status (0: the connection failed or closed
without an answer), the index of the request body sent, the response's request id (``X-Request-ID``, nginx's) and a
digest of the answer's content (the body from ``"fs":`` on, which leaves out the request id and
the model reference), so that callers can compare each answer with a reference answer.
"""

from __future__ import annotations

import asyncio
import hashlib
import multiprocessing as mp
import re
import time
from dataclasses import dataclass, field
from typing import Any

from benchmarks.loadgen import read_response_with_headers

_VERSION = re.compile(rb'"version":"(\d+)"')
_ANSWER_FROM = b'"fs":'


@dataclass(frozen=True)
class Outcome:
    """One request: ``sent`` is a Unix time, ``latency_s`` until the answer (or the failure)."""

    sent: float
    latency_s: float
    status: int  # 0: no HTTP answer (connection refused, reset or closed)
    body_index: int
    source: str
    request_id: str
    digest: str  # of the answer's content; "" without a 200
    version: str  # the model version that answered; "" without one
    error: str = ""
    retried: bool = False  # sent again on a new connection (see _Client.request)


@dataclass
class OpenLoopResult:
    outcomes: list[Outcome] = field(default_factory=list)


def sources(n: int) -> list[str]:
    """``n`` loopback client addresses: 127.0.0.2, 127.0.0.3, ..."""
    return [f"127.0.0.{2 + i}" for i in range(n)]


def answer_digest(body: bytes) -> str:
    start = body.find(_ANSWER_FROM)
    return hashlib.sha256(body[start:]).hexdigest()[:16] if start >= 0 else ""


class _Client:
    def __init__(self, host: str, port: int, source: str) -> None:
        self.host, self.port, self.source = host, port, source
        self.idle: list[tuple[asyncio.StreamReader, asyncio.StreamWriter]] = []

    async def request(self, payload: bytes) -> tuple[int, dict[bytes, bytes], bytes, bool]:
        """Status, headers, body, and whether the request was sent again: as browsers do, a
        request on a reused keep-alive connection that the server closed before any byte of an
        answer (nginx closing idle connections at a reload) is sent once more, on a new one."""
        reused = bool(self.idle)
        reader, writer = self.idle.pop() if reused else await self._connect()
        try:
            writer.write(payload)
            status, headers, body = await read_response_with_headers(reader)
        except (asyncio.IncompleteReadError, ConnectionResetError, BrokenPipeError) as exc:
            writer.close()
            nothing = not isinstance(exc, asyncio.IncompleteReadError) or not exc.partial
            if not (reused and nothing):
                raise
            status, headers, body = await self._once(payload)
            return status, headers, body, True
        except BaseException:
            writer.close()
            raise
        self._keep(reader, writer, headers)
        return status, headers, body, False

    async def _connect(self) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        return await asyncio.open_connection(self.host, self.port, local_addr=(self.source, 0))

    async def _once(self, payload: bytes) -> tuple[int, dict[bytes, bytes], bytes]:
        reader, writer = await self._connect()
        try:
            writer.write(payload)
            status, headers, body = await read_response_with_headers(reader)
        except BaseException:
            writer.close()
            raise
        self._keep(reader, writer, headers)
        return status, headers, body

    def _keep(
        self,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        headers: dict[bytes, bytes],
    ) -> None:
        if headers.get(b"connection", b"").lower() == b"close":
            writer.close()
        else:
            self.idle.append((reader, writer))


async def _one(
    client: _Client, payload: bytes, index: int, timeout_s: float, out: list[Outcome]
) -> None:
    sent = time.time()
    t0 = time.perf_counter()
    status, headers, body, error, retried = 0, {}, b"", "", False
    try:
        status, headers, body, retried = await asyncio.wait_for(client.request(payload), timeout_s)
    except (TimeoutError, OSError, asyncio.IncompleteReadError, ValueError) as exc:
        error = f"{type(exc).__name__}: {exc}"[:160]
    latency = time.perf_counter() - t0
    rid = headers.get(b"x-request-id", b"")
    version = _VERSION.search(body)
    out.append(
        Outcome(
            sent=sent,
            latency_s=latency,
            status=status,
            body_index=index,
            source=client.source,
            request_id=rid.decode(),
            digest=answer_digest(body) if status == 200 else "",
            version=version.group(1).decode() if version else "",
            error=error,
            retried=retried,
        )
    )


async def _run(
    host: str,
    port: int,
    requests: list[bytes],
    rate: float,
    addresses: list[str],
    stop: Any,
    max_s: float,
    timeout_s: float,
) -> OpenLoopResult:
    result = OpenLoopResult()
    clients = [_Client(host, port, a) for a in addresses]
    interval = 1.0 / rate
    tasks: set[asyncio.Task[None]] = set()
    began = time.perf_counter()
    i = 0
    while not stop.is_set() and time.perf_counter() - began < max_s:
        due = began + i * interval
        delay = due - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        task = asyncio.create_task(
            _one(clients[i % len(clients)], requests[i % len(requests)], i % len(requests),
                 timeout_s, result.outcomes)
        )  # fmt: skip
        tasks.add(task)
        task.add_done_callback(tasks.discard)
        i += 1
    if tasks:
        await asyncio.wait(tasks, timeout=timeout_s + 1)
    return result


def _child(conn: Any, args: tuple[Any, ...]) -> None:
    try:
        import uvloop

        conn.send(uvloop.run(_run(*args)))
    except BaseException as exc:  # report instead of dying silently
        conn.send(exc)
    finally:
        conn.close()


class OpenLoop:
    """The generator in a process of its own: ``start()``, then ``stop()`` returns the result."""

    def __init__(
        self,
        host: str,
        port: int,
        requests: list[bytes],
        rate: float,
        addresses: list[str],
        *,
        max_s: float = 3600.0,
        timeout_s: float = 30.0,
    ) -> None:
        ctx = mp.get_context("spawn")
        self._stop = ctx.Event()
        self._parent, child = ctx.Pipe(duplex=False)
        args = (host, port, requests, rate, addresses, self._stop, max_s, timeout_s)
        self._process = ctx.Process(target=_child, args=(child, args), daemon=True)
        self._child = child

    def start(self) -> OpenLoop:
        self._process.start()
        self._child.close()
        return self

    def stop(self) -> OpenLoopResult:
        self._stop.set()
        outcome = self._parent.recv()
        self._process.join()
        if isinstance(outcome, BaseException):
            raise outcome
        assert isinstance(outcome, OpenLoopResult)
        return outcome

    @property
    def pid(self) -> int | None:
        return self._process.pid


async def _closed(
    host: str, port: int, requests: list[bytes], addresses: list[str], seconds: float
) -> list[tuple[float, int]]:
    done: list[tuple[float, int]] = []
    stop_at = time.perf_counter() + seconds

    async def loop(client: _Client, k: int) -> None:
        while time.perf_counter() < stop_at:
            try:
                status, _, _, _ = await client.request(requests[k % len(requests)])
            except (OSError, asyncio.IncompleteReadError, ValueError):
                status = 0
            done.append((time.perf_counter(), status))
            k += 1

    await asyncio.gather(*(loop(_Client(host, port, a), k) for k, a in enumerate(addresses)))
    return done


def closed_loop_rps(
    host: str, port: int, requests: list[bytes], addresses: list[str], seconds: float
) -> float:
    """2xx answers per second with one connection per address, each sending its next request as
    soon as the previous one is answered (the maximum an open loop is then set against). Keep
    ``len(addresses)`` above the expected maximum / 50 so that nginx's per-address limit is not
    what is measured."""
    import uvloop

    done = uvloop.run(_closed(host, port, requests, addresses, seconds))
    ok = [t for t, status in done if 200 <= status < 300]
    return len(ok) / seconds
