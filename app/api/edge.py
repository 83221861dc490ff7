"""The outermost layer, one pure-ASGI middleware for what every request pays for: its
``X-Request-ID`` (taken from the client when well-formed, else made up; returned on the answer and
put in the log context) and its metrics (counted and timed by route template).

One layer instead of two, and the metric series objects are looked up once per (method, route,
status) and kept: on the health path that is most of what the stack used to cost.

``GET /v1/health`` without a body and without ``Origin`` (every monitor, load balancer and app
check) is answered here, with the same bytes and headers the route sends: it needs no routing, no
CORS, no body guard and no error pages, and it is the path polled hardest. Anything else about it
(a cross-origin request, HEAD, a body) goes down the stack like every request.
"""

from __future__ import annotations

import os
import re
import time
from typing import Any

from starlette.middleware.cors import CORSMiddleware
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.api.system import health_body
from app.logs import REQUEST_ID
from app.metrics import HTTP_LATENCY, HTTP_REQUESTS

_VALID = re.compile(r"^[A-Za-z0-9._:@/+=-]{1,128}$")
_HEADER = b"x-request-id"
HEALTH_PATH = "/v1/health"
_JSON = (b"content-type", b"application/json")


class Edge:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self._counters: dict[tuple[str, str, int], Any] = {}
        self._timers: dict[tuple[str, str], Any] = {}

    def _observe(self, method: str, route: str, status: int, seconds: float) -> None:
        counter = self._counters.get((method, route, status))
        if counter is None:
            counter = self._counters[(method, route, status)] = HTTP_REQUESTS.labels(
                method=method, route=route, status=str(status))
        timer = self._timers.get((method, route))
        if timer is None:
            timer = self._timers[(method, route)] = HTTP_LATENCY.labels(method=method, route=route)
        counter.inc()
        timer.observe(seconds)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        kind = scope["type"]
        if kind != "http" and kind != "websocket":
            await self.app(scope, receive, send)
            return
        given = ""
        cross_origin = False
        has_body = False
        for key, value in scope["headers"]:
            if key == _HEADER:
                given = value.decode("latin-1")
            elif key == b"origin":
                cross_origin = True
            elif key == b"transfer-encoding" or (key == b"content-length" and value.strip() not in (b"0", b"")):
                has_body = True
        scope["jmbooru.cross_origin"] = cross_origin
        request_id = given if given and _VALID.match(given) else os.urandom(8).hex()
        token = REQUEST_ID.set(request_id)
        try:
            if kind == "websocket":
                await self.app(scope, receive, send)
                return
            start = time.perf_counter()
            status = 500
            # A request without Origin skips the CORS layer (LightCors); its answer still varies by Origin.
            extra = [(_HEADER, request_id.encode())] if cross_origin else [(_HEADER, request_id.encode()),
                                                                           (b"vary", b"Origin")]
            if (scope["path"] == HEALTH_PATH and scope["method"] == "GET" and not cross_origin and not has_body
                    and not scope.get("root_path")):
                body = health_body(scope["app"].state.settings)
                await send({"type": "http.response.start", "status": 200, "headers": [
                    (b"content-length", str(len(body)).encode()), _JSON, *extra]})
                await send({"type": "http.response.body", "body": body})
                self._observe("GET", HEALTH_PATH, 200, time.perf_counter() - start)
                return

            async def answer(message: Message) -> None:
                nonlocal status
                if message["type"] == "http.response.start":
                    status = message["status"]
                    message["headers"] = [*message.get("headers", ()), *extra]
                await send(message)

            try:
                await self.app(scope, receive, answer)
            finally:
                route = getattr(scope.get("route"), "path", None) or ("(unmatched)" if status == 404 else "(other)")
                self._observe(scope["method"], route, status, time.perf_counter() - start)
        finally:
            REQUEST_ID.reset(token)


class LightCors(CORSMiddleware):
    """Starlette's CORS, skipped for requests without an ``Origin`` header (most API clients and every
    monitor): they need no CORS headers, and ``Edge`` adds their ``Vary: Origin``."""

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and not scope.get("jmbooru.cross_origin", True):
            await self.app(scope, receive, send)
            return
        await super().__call__(scope, receive, send)
