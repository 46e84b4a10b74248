"""The prediction routes' fast path: a well-formed, authorised request skips FastAPI's
per-request machinery; anything else takes the ordinary path.

FastAPI's routing, dependency solving and body field handling cost ~0.4 ms of event-loop CPU per
prediction under load (``benchmarks/profile_serving.py`` with and without ``--no-fast-path``:
1.6 against 1.2 ms), twice what parsing and validating the strip costs. This middleware (inside
:class:`~serving.middleware.RequestMiddleware`, so request id, metrics, log line and audit record
are the same) answers ``POST`` to a route it can serve by doing what FastAPI would, directly:

1. the body, one complete ``application/json`` message, is parsed and validated in one step
   (``TypeAdapter.validate_json``) into the route's body model; where that model has a plain
   ``signal: list[float]`` field, the signal array is first parsed straight into float64 by
   :func:`~serving.signal_json.split_signal` (when it can do so exactly; otherwise the whole body
   goes through ``validate_json``) and the model gets that array;
2. the route's own user dependency (:class:`~serving.deps.BearerUser`) is awaited with the request;
3. the route's own endpoint is called with both; an exception it raises is answered by the app's
   own exception handler for it (as FastAPI's exception middleware would).

If step 1 or 2 fails (invalid body, missing token, wrong role, ...), or the request is anything
else (another content type, a streamed body), the request goes down the ordinary FastAPI path
with its body replayed: every error answer is FastAPI's, word for word. Only routes of that shape
(an async endpoint taking one JSON body model, the ``Request`` and one async dependency that takes
only the request) are taken over; the others are left to FastAPI. ``HEARTEYE_FAST_PATH=false``
turns it off.
"""

from __future__ import annotations

import inspect
import logging
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from fastapi.routing import APIRoute
from pydantic import TypeAdapter
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import ASGIApp, Receive, Scope, Send

from serving.middleware import replay
from serving.signal_json import split_signal

logger = logging.getLogger("serving.fastpath")

Handler = Callable[[Request, Exception], Any]


@dataclass(frozen=True)
class FastRoute:
    """What the fast path needs of one route: its body model, user dependency and endpoint."""

    route: APIRoute
    body: TypeAdapter[Any]
    body_param: str
    user: Callable[[Request], Awaitable[Any]]
    user_param: str
    request_param: str
    endpoint: Callable[..., Awaitable[Response]]
    signal_array: bool = False  # the body model has a plain ``signal: list[float]``


def fast_routes(routes: Iterable[Any]) -> dict[str, FastRoute]:
    """The routes among ``routes`` the fast path can answer, by path; the others are skipped."""
    found: dict[str, FastRoute] = {}
    for route in routes:
        fast = _fast_route(route)
        if fast is None:
            logger.debug("fast path: %s left to FastAPI", getattr(route, "path", route))
        else:
            found[route.path] = fast
    return found


def _fast_route(route: Any) -> FastRoute | None:
    if not isinstance(route, APIRoute) or route.methods != {"POST"}:
        return None
    d = route.dependant
    if len(d.body_params) != 1 or len(d.dependencies) != 1 or not _request_only(d):
        return None
    user = d.dependencies[0]
    if user.dependencies or user.body_params or user.call is None or user.name is None:
        return None
    if not _request_only(user):
        return None
    body = d.body_params[0]
    if (
        body.field_info.annotation is None
        or not _is_async(route.endpoint)
        or not _is_async(user.call)
    ):
        return None
    return FastRoute(
        route=route,
        body=TypeAdapter(body.field_info.annotation),
        body_param=body.name,
        user=user.call,
        user_param=user.name,
        request_param=str(d.request_param_name),
        endpoint=route.endpoint,
        signal_array=_plain_signal(body.field_info.annotation),
    )


def _plain_signal(model: Any) -> bool:
    """Whether ``model`` is a pydantic model whose ``signal`` is a ``list[float]`` with no
    constraint or validator: the array :func:`split_signal` parses is then exactly what
    validation would have made of it."""
    fields = getattr(model, "model_fields", None)
    decorators = getattr(model, "__pydantic_decorators__", None)
    if not isinstance(fields, dict) or decorators is None or "signal" not in fields:
        return False
    field = fields["signal"]
    checked = [d.info.fields for d in decorators.field_validators.values()]
    return (
        field.annotation == list[float]
        and not field.metadata
        and not any("signal" in names or "*" in names for names in checked)
        and not decorators.model_validators
    )


class PredictFastPath:
    """See the module docstring. ``handlers``: the app's exception handlers (by class).

    ``answered`` and ``handed_on`` count the requests to its routes it answered and those it
    handed to FastAPI; ``split`` those whose signal :func:`split_signal` parsed.
    """

    def __init__(
        self, app: ASGIApp, routes: dict[str, FastRoute], handlers: Mapping[Any, Handler]
    ) -> None:
        self.app = app
        self.routes = routes
        self.handlers = handlers
        self.answered = 0
        self.handed_on = 0
        self.split = 0

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        fast = self.routes.get(scope["path"]) if scope["type"] == "http" else None
        if fast is None:
            await self.app(scope, receive, send)
            return
        if scope["method"] != "POST" or not _is_json(scope):
            self.handed_on += 1
            await self.app(scope, receive, send)
            return
        message = await receive()
        body_receive = replay([message], receive)
        if message["type"] != "http.request" or message.get("more_body", False):
            self.handed_on += 1
            await self.app(scope, body_receive, send)
            return
        request = Request(scope, body_receive)
        raw = message.get("body", b"")
        try:
            split = split_signal(raw) if fast.signal_array else None
            if split is None:
                body = fast.body.validate_json(raw)
            else:  # the rest validated as usual; the model gets the parsed array
                body = fast.body.validate_json(split.rest).model_copy(
                    update={"signal": split.samples}
                )
                self.split += 1
            user = await fast.user(request)
        except Exception:  # whatever it is, FastAPI answers it as it always does
            self.handed_on += 1
            await self.app(scope, body_receive, send)
            return
        self.answered += 1
        scope["route"] = fast.route  # the metrics' route label, as routing would set it
        try:
            response = await fast.endpoint(
                **{fast.body_param: body, fast.user_param: user, fast.request_param: request}
            )
        except Exception as exc:
            response = await self._handle(request, exc)
        await response(scope, body_receive, send)

    async def _handle(self, request: Request, exc: Exception) -> Response:
        for cls in type(exc).__mro__:
            handler = self.handlers.get(cls)
            if handler is not None:
                if inspect.iscoroutinefunction(handler):
                    response: Response = await handler(request, exc)
                else:
                    response = await run_in_threadpool(handler, request, exc)
                return response
        raise exc


def _request_only(dependant: Any) -> bool:
    """Whether ``dependant`` takes the request and no path, query, header or cookie parameters."""
    return dependant.request_param_name is not None and not (
        dependant.path_params
        or dependant.query_params
        or dependant.header_params
        or dependant.cookie_params
    )


def _is_async(call: Callable[..., Any]) -> bool:
    """A coroutine function, or an object whose ``__call__`` is one (a dependency class)."""
    return inspect.iscoroutinefunction(call) or inspect.iscoroutinefunction(
        getattr(call, "__call__", None)  # noqa: B004 - the method, not callability
    )


def _is_json(scope: Scope) -> bool:
    for name, value in scope["headers"]:
        if name == b"content-type":
            return value.partition(b";")[0].strip().lower() == b"application/json"
    return False
