"""The Gunicorn worker class: uvicorn's, with TCP_NODELAY on every accepted connection.

Gunicorn creates the listening socket with ``proto=0``; sockets accepted from it report
``proto == 0`` too, and asyncio only enables TCP_NODELAY on accepted sockets whose ``proto`` is
``IPPROTO_TCP`` (Kludex/uvicorn#3149). Nagle's algorithm then holds back the last small segment
of each response until the client's delayed ACK: about 40 ms more per request after the first on
a keep-alive connection (nginx's upstream keepalive reuses connections all the time).

Linux copies TCP_NODELAY from a listening socket to the sockets it accepts, so setting it once on
the listeners here fixes every connection, whatever the event loop (asyncio or uvloop).
docs/benchmarks.md has the measurement with and without it.
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


def enable_nodelay(sock: Any) -> bool:
    """Set TCP_NODELAY on a (listening) TCP socket; False for other sockets (unix)."""
    if getattr(sock, "family", None) not in (socket.AF_INET, socket.AF_INET6):
        return False
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return True


class HeartEyeUvicornWorker(UvicornWorker):
    """uvloop + httptools, no uvicorn access log (the app writes its own JSON line)."""

    CONFIG_KWARGS: dict[str, Any] = {  # noqa: RUF012 - uvicorn's own class attribute
        "loop": "auto",
        "http": "auto",
        "access_log": False,
        "server_header": False,
    }

    def init_process(self) -> None:
        for listener in self.sockets:
            enable_nodelay(getattr(listener, "sock", listener))
        super().init_process()
