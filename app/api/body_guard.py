"""Request bodies: the API key before the body, and a cap on its size.

FastAPI reads (and keeps whole) a JSON body before it runs any dependency, so without this a
request with no key could make the server hold a body of any size before answering ``401``.
This pure-ASGI layer, in front of routing, answers a request that carries a body:

* ``401`` at once when its route needs the API key and the key is missing or wrong;
* ``413`` at once when its ``Content-Length`` is above ``max_body_bytes``;
* ``413`` as soon as a chunked body passes the limit, keeping no more than the limit.

Each of these answers closes the connection: the rest of the body is never read. Being ASGI, it
holds however the server is started (see ``app.serving`` for the limits on heads and slow bodies).
"""

from __future__ import annotations

import json
import re
from urllib.parse import parse_qs

from starlette.routing import compile_path
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.api.deps import KEY_REQUIRED_SENTENCE, key_matches


def _header(scope: Scope, name: bytes) -> bytes | None:
    for key, value in scope["headers"]:
        if key == name:
            return bytes(value)
    return None


def _declared_length(scope: Scope) -> int | None:
    """The body's announced length: None when chunked (or unannounced), -1 when unreadable."""
    raw = _header(scope, b"content-length")
    if raw is None:
        return None
    text = raw.decode("latin-1").strip()
    return int(text) if text.isascii() and text.isdigit() else -1


def _keyed_operations(document: dict[str, dict[str, dict[str, object]]]) -> list[tuple[str, re.Pattern[str]]]:
    """(method, path pattern) of every operation that declares the API key (``security``) in the
    app's OpenAPI document, which is where FastAPI states it publicly, whatever the router layout."""
    keyed = []
    for path, operations in document.get("paths", {}).items():
        for method, operation in operations.items():
            if isinstance(operation, dict) and operation.get("security"):
                keyed.append((method.upper(), compile_path(path)[0]))
    return keyed


async def _answer(send: Send, status: int, detail: str) -> None:
    body = json.dumps({"detail": detail}).encode()
    await send({"type": "http.response.start", "status": status, "headers": [
        (b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
        (b"connection", b"close")]})
    await send({"type": "http.response.body", "body": body})


class BodyGuard:
    def __init__(self, app: ASGIApp, max_body_bytes: int) -> None:
        self.app = app
        self.max_body_bytes = max_body_bytes
        self._keyed: list[tuple[str, re.Pattern[str]]] | None = None

    def _too_large(self) -> str:
        return (f"The request body is larger than this server accepts ({self.max_body_bytes} bytes); "
                f"send a smaller one.")

    def _route_needs_key(self, scope: Scope) -> bool:
        if self._keyed is None:  # the routes are fixed once the app serves
            self._keyed = _keyed_operations(scope["app"].openapi())
        method, path, root = scope["method"], scope["path"], scope.get("root_path", "")
        if root and path.startswith(root):  # the document's paths are below the root path
            path = path[len(root):]
        return any(method == keyed_method and pattern.match(path) for keyed_method, pattern in self._keyed)

    def _key_missing(self, scope: Scope) -> bool:
        settings = scope["app"].state.settings
        if not settings.api_key or not self._route_needs_key(scope):
            return False
        given = _header(scope, b"x-api-key")
        key = given.decode("latin-1") if given is not None else None
        if key is None:
            query = parse_qs(scope.get("query_string", b"").decode("latin-1"))
            key = (query.get("api_key") or [None])[0]
        return not key_matches(settings, key)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        length = _declared_length(scope)
        chunked = _header(scope, b"transfer-encoding") is not None
        if not chunked and not length:  # no body (a malformed length is the server's to refuse)
            await self.app(scope, receive, send)
            return
        if self._key_missing(scope):
            await _answer(send, 401, KEY_REQUIRED_SENTENCE)
            return
        if length is not None and length > self.max_body_bytes:
            await _answer(send, 413, self._too_large())
            return
        await self._capped(scope, receive, send)

    async def _capped(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Pass the body on while it stays under the limit; past it, answer 413 and tell the app
        the client is gone (what it then sends is dropped)."""
        received = 0
        refused = False
        started = False

        async def capped_receive() -> Message:
            nonlocal received, refused
            if refused:
                return {"type": "http.disconnect"}
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_body_bytes:
                    refused = True
                    if not started:
                        await _answer(send, 413, self._too_large())
                    return {"type": "http.disconnect"}
            return message

        async def tracked_send(message: Message) -> None:
            nonlocal started
            if refused:
                return
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, capped_receive, tracked_send)
        except Exception:
            if not refused:
                raise
            # The app failed on the body it never got; the client already has its 413.
