"""Many WebSocket clients in one process, each stamping every frame with its arrival time.

    python bench/_ws_clients.py <port> <paths.json> [connect concurrency]

A minimal RFC 6455 client on asyncio protocols (uvloop when installed): the arrival time of a
frame is read with ``time.monotonic()`` (CLOCK_MONOTONIC, the same clock in every process of the
machine) in ``data_received``, the callback that gets the bytes from the socket, before any JSON
parsing, so a busy client adds as little as possible to the measured latency. Pings are answered.

Prints ``READY <connected> <failed>`` once every connection is open, then obeys stdin lines:
``DUMP <file>`` writes and forgets what arrived so far (one JSON object per frame: connection index,
arrival time, event, job_id, seq) and prints ``DUMPED <frames>``; ``QUIT`` closes everything.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import os
import resource
import sys
import threading
import time
from typing import cast

Record = tuple[int, float, bytes]


class WsClient(asyncio.Protocol):
    def __init__(self, index: int, path: str, host: str, sink: list[Record], opened: asyncio.Future[bool]) -> None:
        self.index = index
        self.path = path
        self.host = host
        self.sink = sink
        self.opened = opened
        self.buf = bytearray()
        self.upgraded = False
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport = cast(asyncio.Transport, transport)
        key = base64.b64encode(os.urandom(16)).decode()
        transport.write(
            f"GET {self.path} HTTP/1.1\r\nHost: {self.host}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n".encode()
        )

    def data_received(self, data: bytes) -> None:
        now = time.monotonic()
        buf = self.buf
        buf += data
        if not self.upgraded:
            end = buf.find(b"\r\n\r\n")
            if end < 0:
                return
            head = bytes(buf[:end])
            del buf[: end + 4]
            if not head.startswith(b"HTTP/1.1 101"):
                if not self.opened.done():
                    self.opened.set_result(False)
                assert self.transport is not None
                self.transport.close()
                return
            self.upgraded = True
            if not self.opened.done():
                self.opened.set_result(True)
        while len(buf) >= 2:
            opcode, length, offset = buf[0] & 0x0F, buf[1] & 0x7F, 2
            if length == 126:
                if len(buf) < 4:
                    return
                length, offset = int.from_bytes(buf[2:4], "big"), 4
            elif length == 127:
                if len(buf) < 10:
                    return
                length, offset = int.from_bytes(buf[2:10], "big"), 10
            if len(buf) < offset + length:
                return
            payload = bytes(buf[offset: offset + length])
            del buf[: offset + length]
            if opcode in (1, 2):
                self.sink.append((self.index, now, payload))
            elif opcode == 9:
                self.send(10, payload)
            elif opcode == 8:
                self.send(8, payload[:2])
                assert self.transport is not None
                self.transport.close()

    def send(self, opcode: int, payload: bytes) -> None:
        mask = os.urandom(4)
        masked = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
        assert self.transport is not None and len(payload) < 126
        self.transport.write(bytes([0x80 | opcode, 0x80 | len(payload)]) + mask + masked)

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.opened.done():
            self.opened.set_result(False)


def write_dump(path: str, records: list[Record]) -> None:
    with open(path, "w", encoding="utf-8") as out:
        for index, arrived, payload in records:
            try:
                frame = json.loads(payload)
            except ValueError:
                frame = {}
            out.write(json.dumps({"conn": index, "t": arrived, "event": frame.get("event"),
                                  "job_id": frame.get("job_id"), "seq": frame.get("seq")}) + "\n")


async def main(port: int, paths: list[str], concurrency: int) -> None:
    loop = asyncio.get_running_loop()
    sink: list[Record] = []
    clients: list[WsClient] = []
    limit = asyncio.Semaphore(concurrency)
    host = f"127.0.0.1:{port}"

    async def open_one(index: int, path: str) -> bool:
        async with limit:
            opened: asyncio.Future[bool] = loop.create_future()
            try:
                _, proto = await loop.create_connection(lambda: WsClient(index, path, host, sink, opened),
                                                        "127.0.0.1", port)
            except OSError:
                return False
            clients.append(proto)
            try:
                return await asyncio.wait_for(opened, 15)
            except TimeoutError:
                return False

    results = await asyncio.gather(*(open_one(i, p) for i, p in enumerate(paths)))
    print("READY", sum(results), len(results) - sum(results), flush=True)

    commands: asyncio.Queue[str] = asyncio.Queue()

    def read_stdin() -> None:
        for line in sys.stdin:
            loop.call_soon_threadsafe(commands.put_nowait, line.strip())
        loop.call_soon_threadsafe(commands.put_nowait, "QUIT")

    threading.Thread(target=read_stdin, daemon=True).start()
    while True:
        command = await commands.get()
        if command.startswith("DUMP "):
            taken, sink[:] = list(sink), []
            write_dump(command.split(" ", 1)[1], taken)  # blocking on purpose: the clients are quiet now
            print("DUMPED", len(taken), flush=True)
        elif command == "QUIT":
            break
    for client in clients:
        if client.transport is not None:
            client.transport.close()
    await asyncio.sleep(0.2)


if __name__ == "__main__":
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    with contextlib.suppress(ValueError, OSError):
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    with contextlib.suppress(ImportError):
        import uvloop

        uvloop.install()
    with open(sys.argv[2], encoding="utf-8") as fh:
        paths_ = json.load(fh)
    asyncio.run(main(int(sys.argv[1]), paths_, int(sys.argv[3]) if len(sys.argv) > 3 else 50))
