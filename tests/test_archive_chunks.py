"""Archives are served in large reads: a 3 MB album goes out in a handful of body messages (each a
hop to a thread and a pass through the loop), whole, and byte ranges still cut exactly."""

from __future__ import annotations

import asyncio
import math
import os
from pathlib import Path

from starlette.types import Message

from app.api.ranges import RangeFileResponse

SIZE = 3 * 1024 * 1024 + 123


async def serve(path: Path, headers: tuple[tuple[bytes, bytes], ...] = ()) -> tuple[Message, list[bytes]]:
    scope = {"type": "http", "method": "GET", "path": "/x", "headers": list(headers), "asgi": {"version": "3.0"},
             "http_version": "1.1", "query_string": b"", "extensions": {}}
    sent: list[Message] = []

    async def receive() -> Message:
        await asyncio.Event().wait()  # the client stays connected until the response ends
        raise AssertionError("unreachable")

    async def send(message: Message) -> None:
        sent.append(message)

    await RangeFileResponse(path, media_type="application/zip")(scope, receive, send)
    bodies = [m["body"] for m in sent if m["type"] == "http.response.body" and m.get("body")]
    return sent[0], bodies


async def test_an_archive_goes_out_whole_in_half_megabyte_reads(tmp_path: Path) -> None:
    data = os.urandom(SIZE)
    path = tmp_path / "album.zip"
    path.write_bytes(data)
    start, bodies = await serve(path)
    assert start["status"] == 200
    assert b"".join(bodies) == data
    assert len(bodies) == math.ceil(SIZE / RangeFileResponse.chunk_size) <= 7  # 64 KiB reads: 49


async def test_a_byte_range_is_cut_exactly_with_large_reads(tmp_path: Path) -> None:
    data = os.urandom(SIZE)
    path = tmp_path / "album.zip"
    path.write_bytes(data)
    first, last = 100_000, 1_400_000  # more than two reads long, starting inside the first
    start, bodies = await serve(path, ((b"range", f"bytes={first}-{last}".encode()),))
    assert start["status"] == 206
    assert b"".join(bodies) == data[first:last + 1]
    assert len(bodies) == math.ceil((last + 1 - first) / RangeFileResponse.chunk_size)
    tail_start, tail = await serve(path, ((b"range", b"bytes=-1000"),))
    assert tail_start["status"] == 206 and b"".join(tail) == data[-1000:]
