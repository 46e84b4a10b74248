"""The outermost middleware (pure ASGI): request id, body limit, metrics, log line, audit record.

For every HTTP request it

* adopts the proxy's ``X-Request-ID`` (from a trusted proxy only) or makes one, and returns it;
* refuses a body over ``max_body_bytes`` with 413 *before* anything parses it: by
  ``Content-Length`` when given, else by counting a chunked body as it streams in;
* after the response: counts it and times it by route template and status, writes one JSON log
  line, and for the prediction routes submits one audit record — answered or refused, whatever
  the status (the audit writer only queues it: never blocks the request).
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from hearteye_platform.auth_tokens import TokenError
from serving.context import STATE_KEY, RequestContext
from serving.logs import log_access
from serving.runtime import Runtime

logger = logging.getLogger("serving.middleware")

PREDICTION_ROUTES = frozenset({"/api/v1/predict", "/api/v1/predict/batch"})
#: Routes (templates) whose POSTs are audited: predictions, uploads, analysis requests.
AUDITED_ROUTES = PREDICTION_ROUTES | {
    "/api/v1/recordings",
    "/api/v1/recordings/{recording_id}/analyses",
}
#: The upload route, whose body limit is recordings_max_upload_bytes.
UPLOAD_ROUTE = "/api/v1/recordings"
_BODY_METHODS = frozenset({"POST", "PUT", "PATCH"})


class _BodyTooLargeError(Exception):
    def __init__(self, size: int | None) -> None:
        self.size = size


class RequestMiddleware:
    """See the module docstring."""

    def __init__(self, app: ASGIApp, runtime: Runtime) -> None:
        self.app = app
        self.runtime = runtime

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        rt = self.runtime
        headers = _headers(scope)
        client = scope.get("client")
        peer = client[0] if client else None
        incoming_id = headers.get("x-request-id")
        ctx = RequestContext(
            request_id=rt.clients.request_id(peer, incoming_id),
            occurred_at=datetime.now(UTC),
            started=started,
            client_addr=rt.clients.client_addr(peer, headers.get("x-forwarded-for")),
        )
        scope.setdefault("state", {})[STATE_KEY] = ctx
        # A proxy that sent its id adds the header to the response itself (nginx does): echoing
        # it too would send the header twice.
        extra_headers = (
            [] if ctx.request_id == incoming_id else [(b"x-request-id", ctx.request_id.encode())]
        )
        status = 500
        finished = False

        def finish() -> None:
            nonlocal finished
            if not finished:
                finished = True
                self._finish(scope, ctx, status, started, headers)

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
                message["headers"] = [*message.get("headers", []), *extra_headers]
            elif message["type"] == "http.response.body" and not message.get("more_body"):
                finish()  # before the last byte leaves: the record exists once the client has it
            await send(message)

        try:
            try:
                body_receive = await self._limit_body(scope, receive, headers)
            except _BodyTooLargeError as exc:
                await self._refuse_too_large(scope, send_with_id, exc.size)
            else:
                await self.app(scope, body_receive, send_with_id)
        except Exception:
            status = 500
            raise
        finally:
            finish()

    # -- body limit ----------------------------------------------------------------------------

    def _body_limit(self, scope: Scope) -> tuple[int, str]:
        settings = self.runtime.settings
        if scope.get("path") == UPLOAD_ROUTE and scope.get("method") == "POST":
            return settings.recordings_max_upload_bytes, "HEARTEYE_RECORDINGS_MAX_UPLOAD_BYTES"
        return settings.max_body_bytes, "max_body_bytes"

    async def _limit_body(self, scope: Scope, receive: Receive, headers: dict[str, str]) -> Receive:
        limit, _ = self._body_limit(scope)
        length = headers.get("content-length")
        if length is not None:
            if length.isdigit() and int(length) > limit:
                raise _BodyTooLargeError(int(length))
            return receive  # the HTTP server enforces the declared length
        if scope["method"] not in _BODY_METHODS and "transfer-encoding" not in headers:
            return receive
        # Chunked (or unknown length): count while reading, stop at the limit.
        chunks: list[bytes] = []
        total = 0
        while True:
            message = await receive()
            if message["type"] != "http.request":
                return replay([message], receive)
            chunk = message.get("body", b"")
            total += len(chunk)
            if total > limit:
                raise _BodyTooLargeError(None)
            chunks.append(chunk)
            if not message.get("more_body", False):
                break
        body = {"type": "http.request", "body": b"".join(chunks), "more_body": False}
        return replay([body], receive)

    async def _refuse_too_large(self, scope: Scope, send: Send, size: int | None) -> None:
        limit, setting = self._body_limit(scope)
        what = f"{size} bytes" if size is not None else "the request body"
        payload = json.dumps(
            {"detail": f"{what} exceeds the limit of {limit} bytes ({setting})"}
        ).encode()
        await send(
            {
                "type": "http.response.start",
                "status": 413,
                "headers": [
                    (b"content-type", b"application/json"),
                    (b"content-length", str(len(payload)).encode()),
                    (b"connection", b"close"),
                ],
            }
        )
        await send({"type": "http.response.body", "body": payload, "more_body": False})

    # -- after the response --------------------------------------------------------------------

    def _finish(
        self,
        scope: Scope,
        ctx: RequestContext,
        status: int,
        started: float,
        headers: dict[str, str],
    ) -> None:
        try:
            latency_s = time.perf_counter() - started
            rt = self.runtime
            method = str(scope["method"])
            path = str(scope["path"])
            route = getattr(scope.get("route"), "path", None)
            if route is None:
                route = path if path in PREDICTION_ROUTES else "unmatched"
            ctx.route = route
            rt.metrics.observe_request(method, route, str(status), latency_s)
            if route in AUDITED_ROUTES and method == "POST":
                if ctx.username is None:
                    ctx.username = self._token_subject(headers.get("authorization"))
                if rt.audit is not None:
                    rt.audit.submit(ctx.audit_record(status, latency_s * 1000.0))
            if rt.settings.access_log:
                log_access(
                    {
                        "request_id": ctx.request_id,
                        "method": method,
                        "path": path,
                        "route": route,
                        "status": status,
                        "latency_ms": round(latency_s * 1000.0, 2),
                        "client": ctx.client_addr,
                        "user": ctx.username,
                        "model": ctx.model_name,
                        "model_version": ctx.model_version,
                    }
                )
        except Exception:  # bookkeeping must never turn an answer into an error
            logger.exception("request bookkeeping failed for %s", ctx.request_id)

    def _token_subject(self, authorization: str | None) -> str | None:
        """The subject of a valid bearer token (for requests refused before authentication)."""
        rt = self.runtime
        if not authorization or rt.jwt_secret is None:
            return None
        scheme, _, token = authorization.partition(" ")
        if scheme.lower() != "bearer":
            return None
        try:
            claims = rt.verify_token(token.strip())
        except TokenError:
            return None
        return claims.subject


_WANTED = frozenset(
    {
        b"content-length",
        b"transfer-encoding",
        b"x-request-id",
        b"x-forwarded-for",
        b"authorization",
    }
)


def _headers(scope: Scope) -> dict[str, str]:
    found: dict[str, str] = {}
    for name, value in scope.get("headers", ()):
        if name in _WANTED:
            key = name.decode("latin-1")
            text = value.decode("latin-1")
            # Repeated X-Forwarded-For lines are one list; other repeats: keep the first.
            if key == "x-forwarded-for" and key in found:
                found[key] = f"{found[key]}, {text}"
            else:
                found.setdefault(key, text)
    return found


def replay(messages: list[Message], receive: Receive) -> Callable[[], Awaitable[Message]]:
    """A ``receive`` that hands out ``messages`` first (a body already read), then ``receive``'s."""
    pending = list(messages)

    async def replayed() -> Message:
        if pending:
            return pending.pop(0)
        return await receive()

    return replayed
