"""Replay the encoded answers of cacheable reads (rank, search, info) for a short time.

The upstream answers are already cached in ``JmSource``; this keeps the final bytes too, so a
repeated request skips routing, validation and JSON encoding (a cached answer then costs a
fraction of the CPU). Pure ASGI on purpose: ``BaseHTTPMiddleware`` would cost more than it saves.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

CACHEABLE_PREFIXES = ("/v1/rank/", "/v1/search/", "/v1/info/", "/v1/comments/")


class ResponseCache:
    def __init__(self, app: ASGIApp, ttl_seconds: float, max_entries: int = 2048) -> None:
        self.app = app
        self.ttl = ttl_seconds
        self.max_entries = max_entries
        self._entries: OrderedDict[tuple[str, bytes], tuple[float, list[Any], bytes, Any]] = OrderedDict()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if (self.ttl <= 0 or scope["type"] != "http" or scope["method"] != "GET"
                or not scope["path"].startswith(CACHEABLE_PREFIXES)):
            await self.app(scope, receive, send)
            return
        key = (scope["path"], scope.get("query_string", b""))
        entry = self._entries.get(key)
        if entry is not None and entry[0] > time.monotonic():
            scope["route"] = entry[3]  # for the request metrics, as if routed
            await send({"type": "http.response.start", "status": 200, "headers": entry[1]})
            await send({"type": "http.response.body", "body": entry[2]})
            return

        start: dict[str, Any] = {}
        chunks: list[bytes] = []

        async def capture(message: Message) -> None:
            if message["type"] == "http.response.start":
                start.update(message)
            elif message["type"] == "http.response.body":
                chunks.append(message.get("body", b""))
                if not message.get("more_body") and start.get("status") == 200:
                    self._store(key, list(start.get("headers", [])), b"".join(chunks), scope.get("route"))
            await send(message)

        await self.app(scope, receive, capture)

    def _store(self, key: tuple[str, bytes], headers: list[Any], body: bytes, route: Any) -> None:
        self._entries[key] = (time.monotonic() + self.ttl, headers, body, route)
        self._entries.move_to_end(key)
        while len(self._entries) > self.max_entries:
            self._entries.popitem(last=False)
