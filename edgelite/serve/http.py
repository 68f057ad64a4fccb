"""What both protocols share on the HTTP side: bounded body reading, JSON errors, the request log."""

from __future__ import annotations

import asyncio
import functools
import itertools
import json
import logging
import time
import uuid
from typing import TYPE_CHECKING, Awaitable, Callable, Optional

from starlette.exceptions import HTTPException
from starlette.requests import ClientDisconnect, Request
from starlette.responses import JSONResponse, Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from edgelite.errors import ImageError, OptionError, RequestError
from edgelite.serve.metrics import Metrics
from edgelite.serve.predict_format import too_large

if TYPE_CHECKING:
    from edgelite.serve.core import ModelCore

try:  # the fastest well-kept JSON encoder, when installed (the [serve] extra); else the standard library's
    import orjson
except ImportError:
    orjson = None

log = logging.getLogger("edgelite.serve")
access_log = logging.getLogger("edgelite.serve.access")

REQUEST_ID = "edgelite.request_id"
MODEL = "edgelite.model"
BATCH = "edgelite.batch"
REASON = "edgelite.reason"
MAX_CACHED_SERIES = 256
CLIENT_GONE = 499  # nginx's code for a client that closed the connection before the answer


def whole_number(text: str) -> bool:
    """True for ASCII digits only (`str.isdigit` also takes "²" and other scripts' digits, which int() refuses)."""
    return text.isascii() and text.isdigit()


async def read_body(request: Request, model_core: "ModelCore") -> bytes:
    """The request body, read under one of the server's body readers and within `body_timeout_s`.

    Raises:
        RequestError: 413 as soon as the body is known to be over the upload
            limit, 408 (closing the connection) when it has not arrived in time,
            503 when every body reader is busy.
    """
    options = model_core.options
    max_bytes = options.max_upload_bytes
    length = request.headers.get("content-length", "")
    if whole_number(length) and int(length) > max_bytes:
        raise too_large(max_bytes)
    with model_core.reading():
        try:
            return await _read_in_time(request, max_bytes, options.body_timeout_s)
        except asyncio.TimeoutError:
            raise RequestError(408, "body_timeout",
                               f"the request body did not arrive within {options.body_timeout_s:g} s "
                               "(--body-timeout); send it in one go", {"Connection": "close"}) from None


async def _read_in_time(request: Request, max_bytes: int, seconds: float) -> bytes:
    if hasattr(asyncio, "timeout"):  # Python 3.11+: unlike wait_for, no extra task per request body
        async with asyncio.timeout(seconds):
            return await _read(request, max_bytes)
    return await asyncio.wait_for(_read(request, max_bytes), seconds)


async def _read(request: Request, max_bytes: int) -> bytes:
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > max_bytes:
            raise too_large(max_bytes)
        chunks.append(chunk)
    return b"".join(chunks)


def json_bytes(document: object) -> bytes:
    """Compact UTF-8 JSON, as Starlette's JSONResponse writes it, with orjson when it is installed.

    orjson writes NaN and infinities as null where json refuses them: callers
    hand it only finite numbers (the /predict route checks its scores).
    """
    if orjson is not None:
        return orjson.dumps(document)
    return json.dumps(document, ensure_ascii=False, allow_nan=False, indent=None, separators=(",", ":")).encode()


class JSONAnswer(Response):
    """A JSON response rendered by `json_bytes`."""

    media_type = "application/json"

    def render(self, content: object) -> bytes:
        return json_bytes(content)


def error_response(request: Request, status: int, reason: str, message: str,
                   headers: Optional[dict] = None) -> JSONResponse:
    """`{"error": message}` with a status; the reason goes to the metrics."""
    request.scope[REASON] = reason
    return JSONResponse({"error": message}, status_code=status, headers=headers)


Handler = Callable[[Request], Awaitable[Response]]


def answers_errors(handler: Handler) -> Handler:
    """Turn refusals and bad input into 4xx JSON answers; anything else reaches `RequestLog` as a 500."""

    @functools.wraps(handler)
    async def endpoint(request: Request) -> Response:
        try:
            return await handler(request)
        except RequestError as exc:
            return error_response(request, exc.status, exc.reason, str(exc), exc.headers)
        except ImageError as exc:
            return error_response(request, 400, exc.reason, str(exc))
        except OptionError as exc:
            return error_response(request, 400, "bad_request", str(exc))
        except ClientDisconnect:
            return error_response(request, CLIENT_GONE, "client_gone", "the client closed the connection")

    return endpoint


async def http_exception(request: Request, exc: Exception) -> Response:
    """Routing errors (404, 405) as JSON, like every other error."""
    assert isinstance(exc, HTTPException)
    reason = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code, f"http_{exc.status_code}")
    return error_response(request, exc.status_code, reason, str(exc.detail), dict(exc.headers or {}))


def json_body(data: bytes) -> object:
    """Parse a JSON request body; a 400 that says where it broke."""
    try:
        return json.loads(data)
    except (ValueError, UnicodeDecodeError) as exc:
        raise RequestError(400, "bad_json", f"the body is not valid JSON ({exc})") from None
    except RecursionError:
        raise RequestError(400, "bad_json", "the body is JSON nested too deeply; an inference request needs "
                                            "a few levels") from None


def _printable(text: str) -> str:
    """Text safe for one log line: control characters and non-ASCII escaped."""
    return text.encode("unicode_escape").decode("ascii").replace('"', '\\"')


def _route_template(scope: Scope) -> str:
    """The matched route's template ("/models/{name}/predict"), never the raw path: metric labels stay few."""
    route = scope.get("route")
    if route is None:  # Starlette versions that do not record the route
        from starlette.routing import Match

        routes = getattr(scope.get("app"), "routes", ())
        route = next((r for r in routes if r.matches(scope)[0] == Match.FULL), None)
    return getattr(route, "path", None) or "unmatched"


class RequestLog:
    """ASGI middleware: a request id, one access-log line and the metrics of every request.

    An exception no handler answered is logged with its trace and the request
    id, and the client gets a 500 naming that id; the server goes on serving.
    A request the server cancels on shutdown (its drain timeout passed) gets
    503, so that its client retries elsewhere.
    """

    def __init__(self, app: ASGIApp, metrics: Metrics):
        self.app = app
        self.metrics = metrics
        # Request ids: a random prefix per app and a count, unique without a urandom call per request.
        self._ids = itertools.count()
        self._id_prefix = uuid.uuid4().hex[:8]
        self._series: dict[tuple, tuple] = {}  # (route, method, status) -> its metric children, looked up once

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request_id = f"{self._id_prefix}{next(self._ids) & 0xFFFFFFFF:08x}"
        scope[REQUEST_ID] = request_id
        started = time.perf_counter()
        status = 0

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                message = {**message, "headers": [*message.get("headers", []),
                                                  (b"x-request-id", request_id.encode())]}
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        except asyncio.CancelledError:
            # Uvicorn cancels what is still running when --drain-timeout passes. The task ends here either way;
            # answering first turns the server's plain 500 into a 503 the client can act on.
            scope[REASON] = "shutting_down"
            if status == 0:
                await _send_json(send_with_id, 503, {"error": "the service is shutting down; retry on another "
                                                              "instance"}, [(b"connection", b"close")])
        except Exception:
            log.exception("request %s (%s %s) failed", request_id, scope["method"], _printable(scope["path"]))
            scope[REASON] = "internal"
            if status == 0:
                await _send_json(send_with_id, 500, {"error": f"internal error; the server log has the details "
                                                              f"under request id {request_id}",
                                                     "request_id": request_id})
        finally:
            self._record(scope, status or 500, time.perf_counter() - started, request_id)

    def _record(self, scope: Scope, status: int, seconds: float, request_id: str) -> None:
        route = _route_template(scope)
        key = (route, scope["method"], status)
        series = self._series.get(key)
        if series is None:
            series = (self.metrics.requests.labels(route=route, method=key[1], status=str(status)),
                      self.metrics.latency.labels(route=route))
            if len(self._series) < MAX_CACHED_SERIES:  # odd methods a client makes up are not kept
                self._series[key] = series
        series[0].inc()
        series[1].observe(seconds)
        if status >= 400:
            self.metrics.errors.labels(route=route, reason=scope.get(REASON, f"http_{status}")).inc()
        client = scope.get("client")
        where = f"{client[0]}:{client[1]}" if client else "-"
        query = scope.get("query_string", b"").decode("latin-1")
        target = _printable(scope["path"] + (f"?{query}" if query else ""))
        extra = "".join(f" {key}={scope[name]}" for key, name in (("model", MODEL), ("batch", BATCH))
                        if name in scope)
        access_log.info('%s "%s %s HTTP/%s" %d %.1fms id=%s%s', where, scope["method"], target,
                        scope.get("http_version", "1.1"), status, seconds * 1000.0, request_id, extra)


async def _send_json(send: Send, status: int, document: dict, headers: Optional[list] = None) -> None:
    body = json.dumps(document).encode()
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
                            *(headers or [])]})
    await send({"type": "http.response.body", "body": body})
