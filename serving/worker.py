"""The Gunicorn worker class: uvicorn's, with TCP_NODELAY guaranteed on accepted connections.

The trap (Kludex/uvicorn#3149): sockets accepted from a listener created with ``proto=0`` report
``proto == 0``, and asyncio only enables TCP_NODELAY on accepted sockets whose ``proto`` is
``IPPROTO_TCP``. Nagle's algorithm then holds the second write of a response (uvicorn writes the
headers, then the body) until the client's delayed ACK: about 40 ms per request after the first
on a keep-alive connection. uvicorn's own multi-worker supervisor (``uvicorn --workers N``, which
``mlflow models serve -w N`` and ``mlflow server --workers N`` use) falls into it.

Under Gunicorn it does not: Gunicorn's TCP listener sets TCP_NODELAY itself and Linux copies it to
every accepted socket; uvloop (our default loop) also sets it per connection. This class sets it
on the listeners once more so that no combination loses it (``--bind fd://N`` sockets handed over
by systemd, the asyncio loop, a future Gunicorn). docs/benchmarks.md has the measurements.

A second trap, with ``reuse_port`` (each worker its own SO_REUSEPORT listener): Gunicorn creates
a worker's listener right after the fork, before the worker imports the app and loads its
models, and the kernel at once hashes a share of the new connections to it. A worker that
replaces a crashed one (or one recycled, or every worker of a restarted master) leaves those
connections waiting in its backlog until it is ready: measured by ``make chaos`` on a busy host,
a request through nginx waited 30 s there (a 499) while its sibling was idle. So this class
swaps each such listener for one bound but not listening: the event loop calls ``listen()`` when
uvicorn starts serving, after the app's start-up, and until then the kernel gives the connections
to the listeners of the workers that are ready.
"""

from __future__ import annotations

import socket
import warnings
from typing import Any

with warnings.catch_warnings():
    # uvicorn.workers is deprecated in favour of the separate uvicorn-worker package; it still
    # ships with uvicorn and is all we need (one subclass), so no extra dependency.
    warnings.simplefilter("ignore", DeprecationWarning)
    from uvicorn.workers import UvicornWorker

from serving.settings import ServingSettings


def enable_nodelay(sock: Any) -> bool:
    """Set TCP_NODELAY on a (listening) TCP socket; False for other sockets (unix)."""
    if getattr(sock, "family", None) not in (socket.AF_INET, socket.AF_INET6):
        return False
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return True


class HeartEyeUvicornWorker(UvicornWorker):
    """uvloop + httptools, no uvicorn access log (the app writes its own JSON line).

    ``HEARTEYE_UVICORN_LOOP`` / ``HEARTEYE_UVICORN_HTTP`` (``auto``; ``ServingSettings``) pick another event loop or
    HTTP parser (``asyncio``, ``h11``): the benchmark uses them to show the TCP_NODELAY fix on
    the asyncio loop, which is the one affected (uvloop enables TCP_NODELAY by itself).
    """

    CONFIG_KWARGS: dict[str, Any] = {  # noqa: RUF012 - uvicorn's own class attribute
        "loop": "auto",
        "http": "auto",
        "access_log": False,
        "server_header": False,
        # Client address and request id come from serving's own trusted-proxy check
        # (serving/context.py); uvicorn must not rewrite them from X-Forwarded-For first.
        "proxy_headers": False,
    }

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        # Created by the master for each worker it spawns; uvicorn's Config is built from
        # CONFIG_KWARGS in UvicornWorker.__init__.
        settings = ServingSettings()
        self.CONFIG_KWARGS = {
            **type(self).CONFIG_KWARGS,
            "loop": settings.uvicorn_loop,
            "http": settings.uvicorn_http,
        }
        super().__init__(*args, **kwargs)

    def init_process(self) -> None:
        if self.cfg.reuse_port:
            for listener in self.sockets:
                listen_when_ready(listener)
        for listener in self.sockets:
            enable_nodelay(getattr(listener, "sock", listener))
        super().init_process()


def listen_when_ready(listener: Any) -> bool:
    """Replace the socket of one of Gunicorn's per-worker SO_REUSEPORT listeners with a socket
    bound to the same address that does not listen yet (asyncio and uvloop call ``listen()`` in
    ``create_server``). False for a listener that is not TCP."""
    old = listener.sock
    if old.family not in (socket.AF_INET, socket.AF_INET6):
        return False
    fresh = socket.socket(old.family, socket.SOCK_STREAM)
    fresh.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    fresh.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    fresh.bind(old.getsockname())
    fresh.setblocking(False)
    fresh.set_inheritable(True)
    listener.sock = fresh
    old.close()  # what the kernel queued on it in these microseconds is refused: nginx retries
    return True
