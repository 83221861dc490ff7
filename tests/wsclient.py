"""Small helpers for tests that talk to a live server over WebSockets and raw sockets."""

from __future__ import annotations

import asyncio
import json
import socket
from typing import Any

from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosedError

FINAL = {"download_ready", "failed", "cancelled", "expired"}


async def follow(url: str, *, timeout: float = 30.0, stop_on_final: bool = True,
                 count: int | None = None, **kwargs: Any) -> list[dict[str, Any]]:
    """Collect frames from a WebSocket until a final frame (or ``count`` frames, or the close)."""
    frames: list[dict[str, Any]] = []
    async with asyncio.timeout(timeout):
        async with connect(url, compression=None, **kwargs) as ws:
            try:
                async for message in ws:
                    frame = json.loads(message)
                    frames.append(frame)
                    if count is not None and len(frames) >= count:
                        break
                    if stop_on_final and frame.get("event") in FINAL:
                        break
            except ConnectionClosedError as exc:  # closed with an error code: what was said still counts
                frames.append({"event": "closed", "code": exc.rcvd.code if exc.rcvd else None})
    return frames


def raw_get(port: int, target: str, headers: dict[str, str] | None = None) -> tuple[int, bytes]:
    """Send a request line exactly as given (no client-side normalisation of the path)."""
    lines = [f"GET {target} HTTP/1.1", "Host: 127.0.0.1", "Connection: close"]
    lines += [f"{k}: {v}" for k, v in (headers or {}).items()]
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1"))
        data = b""
        while chunk := sock.recv(65536):
            data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    status = int(head.split(b" ", 2)[1])
    return status, body
