"""``X-Request-ID``: taken from the client (when well-formed) or made up, returned on the answer,
and put in the log context, so a job can be followed from its POST to its final frame."""

from __future__ import annotations

import re
import secrets

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.logs import REQUEST_ID

_VALID = re.compile(r"^[A-Za-z0-9._:@/+=-]{1,128}$")


class RequestId:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        given = next((v.decode("latin-1") for k, v in scope.get("headers", ()) if k == b"x-request-id"), "")
        request_id = given if _VALID.match(given) else secrets.token_hex(8)
        token = REQUEST_ID.set(request_id)

        async def with_header(message: Message) -> None:
            if message["type"] == "http.response.start":
                message.setdefault("headers", [])
                message["headers"] = [*message["headers"], (b"x-request-id", request_id.encode())]
            await send(message)

        try:
            await self.app(scope, receive, with_header if scope["type"] == "http" else send)
        finally:
            REQUEST_ID.reset(token)
