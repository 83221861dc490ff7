"""Small helpers for tests that talk to a live server over WebSockets and raw sockets."""

from __future__ import annotations

import asyncio
import json
import socket
from typing import Any

import httpx
from prometheus_client.parser import text_string_to_metric_families
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosedError

FINAL = {"download_ready", "failed", "cancelled", "expired"}


async def follow(url: str, *, timeout: float = 30.0, stop_on_final: bool = True,
                 count: int | None = None, opened: asyncio.Event | None = None,
                 **kwargs: Any) -> list[dict[str, Any]]:
    """Collect frames from a WebSocket until a final frame (or ``count`` frames, or the close);
    ``opened`` is set once the handshake is done."""
    frames: list[dict[str, Any]] = []
    async with asyncio.timeout(timeout):
        async with connect(url, compression=None, **kwargs) as ws:
            if opened is not None:
                opened.set()
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


async def listen(url: str, *, timeout: float = 30.0, open_timeout: float = 15.0,
                 **kwargs: Any) -> asyncio.Task[list[dict[str, Any]]]:
    """``follow`` in a task, returned once its WebSocket is open (the handshake done): an app opens
    its notifications socket, then POSTs. Fails if the socket does not open."""
    opened = asyncio.Event()
    frames = asyncio.create_task(follow(url, timeout=timeout, opened=opened, **kwargs))
    waiting = asyncio.create_task(opened.wait())
    try:
        await asyncio.wait([frames, waiting], timeout=open_timeout, return_when=asyncio.FIRST_COMPLETED)
    finally:
        waiting.cancel()
    if not opened.is_set():
        if frames.done():
            frames.result()  # why it could not connect
        frames.cancel()
        raise AssertionError(f"the WebSocket {url} did not open in {open_timeout:g} s")
    return frames


async def sockets_open(base_url: str, endpoint: str = "notifications") -> int:
    """How many WebSockets of ``endpoint`` one API process holds now (its /metrics gauge); a socket
    is counted once its handler took it up, right before it subscribes to its frames."""
    async with httpx.AsyncClient(base_url=base_url, timeout=10) as http:
        resp = await http.get("/metrics")
    resp.raise_for_status()
    for family in text_string_to_metric_families(resp.text):
        for sample in family.samples:
            if sample.name == "jmbooru_websockets_open" and sample.labels.get("endpoint") == endpoint:
                return int(sample.value)
    return 0


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
