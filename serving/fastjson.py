"""JSON request bodies parsed by pydantic-core (jiter) instead of the standard library, and JSON
answers serialised by pydantic-core.

A 10-s strip at 360 Hz is ~27 kB of numbers: ``json.loads`` takes ~0.7 ms for it, jiter ~0.11 ms,
on the event loop, for every prediction. FastAPI's documented extension point (a custom
``APIRoute`` with its own ``Request`` class) swaps the parser; validation, the 422 for malformed
JSON and the OpenAPI schema stay FastAPI's.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Coroutine
from typing import Any

import pydantic_core
from fastapi import Request, Response
from fastapi.routing import APIRoute

JSON_MEDIA_TYPE = "application/json"


def json_response(payload: Any, status_code: int = 200) -> Response:
    """``payload`` (plain JSON values) serialised once by pydantic-core: no validation round."""
    return Response(pydantic_core.to_json(payload), status_code, media_type=JSON_MEDIA_TYPE)


class FastJSONRequest(Request):
    """A request whose ``json()`` uses ``pydantic_core.from_json`` (NaN/Infinity accepted)."""

    async def json(self) -> Any:
        if not hasattr(self, "_json"):
            body = await self.body()
            try:
                self._json = pydantic_core.from_json(body, allow_inf_nan=True)
            except ValueError as exc:
                # FastAPI answers a JSONDecodeError with its usual 422 "json_invalid".
                raise json.JSONDecodeError(str(exc), "", 0) from None
        return self._json


class FastJSONRoute(APIRoute):
    """An ``APIRoute`` handing its endpoint a :class:`FastJSONRequest`."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        original = super().get_route_handler()

        async def handler(request: Request) -> Response:
            return await original(FastJSONRequest(request.scope, request.receive))

        return handler
