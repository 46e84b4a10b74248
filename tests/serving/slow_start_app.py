"""An ASGI app whose start-up waits while a gate file exists (tests/serving/test_worker_listen.py):
a stand-in for a serving worker that is still importing and loading its models."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path
from typing import Any


async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    if scope["type"] == "lifespan":
        await receive()  # lifespan.startup
        gate = Path(os.environ["SLOW_START_GATE"])
        while gate.exists():
            await asyncio.sleep(0.05)
        await send({"type": "lifespan.startup.complete"})
        await receive()  # lifespan.shutdown
        await send({"type": "lifespan.shutdown.complete"})
        return
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": b"ready"})
