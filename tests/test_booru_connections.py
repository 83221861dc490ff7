"""The booru client's kept-alive connections: a connection the server closed while it was idle is
noticed (through the cheap poll of app/sources/booru/sockets.py) and replaced, never written to; and
a post's URL is checked with one parse and the answer remembered, the same answer as joining it."""

from __future__ import annotations

import asyncio

import httpx
import pytest

from app.sources.booru import sockets
from app.sources.booru.hosts import HostPolicy, usable_url
from app.sources.booru.http import HttpOptions, SiteHttp


class ClosingServer:
    """HTTP/1.1 on loopback that answers one request per connection with a kept-alive response
    (no ``Connection: close``), then closes the connection while the client thinks it idle."""

    def __init__(self) -> None:
        self.connections = 0
        self.closed = asyncio.Event()
        self.server: asyncio.Server | None = None

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        await reader.readuntil(b"\r\n\r\n")
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Type: text/plain\r\n\r\nok")
        await writer.drain()
        writer.close()
        await writer.wait_closed()
        self.closed.set()

    async def __aenter__(self) -> str:
        self.server = await asyncio.start_server(self.handle, "127.0.0.1", 0)
        return f"http://127.0.0.1:{self.server.sockets[0].getsockname()[1]}"

    async def __aexit__(self, *exc: object) -> None:
        assert self.server is not None
        self.server.close()
        await self.server.wait_closed()


async def test_a_connection_the_server_closed_while_idle_is_replaced(monkeypatch: pytest.MonkeyPatch) -> None:
    asked: list[bool] = []
    polled = sockets._PolledStream.get_extra_info

    def spy(self: sockets._PolledStream, info: str) -> object:
        answer = polled(self, info)
        if info == "is_readable":
            asked.append(bool(answer))
        return answer

    monkeypatch.setattr(sockets._PolledStream, "get_extra_info", spy)
    server = ClosingServer()
    async with server as base:
        http = SiteHttp("Test", "JMBOORU_TEST", HostPolicy(base), HttpOptions(max_attempts=1))
        try:
            first = await http.get("/one")
            assert first.status_code == 200 and first.text == "ok"
            await server.closed.wait()
            await asyncio.sleep(0)  # the FIN is on loopback already; let the loop see nothing else
            second = await http.get("/two")  # one attempt only: a write to the dead connection would fail it
            assert second.status_code == 200 and second.text == "ok"
        finally:
            await http.aclose()
    assert server.connections == 2
    assert True in asked, "the idle connection was not asked through the polled stream"


async def test_the_poll_says_an_open_idle_connection_is_not_readable() -> None:
    async def keep_open(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.read()  # until the client closes
        writer.close()

    server = await asyncio.start_server(keep_open, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    import httpcore

    backend = sockets.PolledBackend(httpcore.AnyIOBackend())
    stream = await backend.connect_tcp("127.0.0.1", port)
    try:
        assert stream.get_extra_info("is_readable") is False
        assert stream.get_extra_info("socket") is not None  # anything else is the wrapped stream's answer
    finally:
        await stream.aclose()
        server.close()
        await server.wait_closed()
    assert stream.get_extra_info("is_readable") is True  # closed: its next read would be b""


async def test_an_image_is_read_from_the_socket_in_large_pieces_and_arrives_whole(monkeypatch: pytest.MonkeyPatch) -> None:
    """httpcore asks its stream for 64 KiB at a time; the booru client's streams ask the socket for
    ``READ_BYTES``, so a body already waiting is taken in a few reads instead of many."""
    import hashlib
    import os

    import httpcore._backends.anyio as anyio_backend

    body = os.urandom(600_000)
    asked: list[int] = []
    read = anyio_backend.AnyIOStream.read

    async def spy(self: anyio_backend.AnyIOStream, max_bytes: int, timeout: float | None = None) -> bytes:
        asked.append(max_bytes)
        return await read(self, max_bytes, timeout)

    monkeypatch.setattr(anyio_backend.AnyIOStream, "read", spy)

    async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: image/png\r\nContent-Length: %d\r\n\r\n" % len(body) + body)
        await writer.drain()
        await reader.read()  # until the client closes
        writer.close()

    server = await asyncio.start_server(answer, "127.0.0.1", 0)
    base = f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}"
    http = SiteHttp("Test", "JMBOORU_TEST", HostPolicy(base), HttpOptions(max_attempts=1))
    try:
        got = await http.get("/image.png")
    finally:
        await http.aclose()
        server.close()
        await server.wait_closed()
    assert hashlib.md5(got.content).digest() == hashlib.md5(body).digest()
    assert asked and min(asked) == sockets.READ_BYTES >= 256 * 1024


def test_poll_cheaply_leaves_a_transport_the_caller_gave_alone() -> None:
    given = httpx.MockTransport(lambda request: httpx.Response(200))
    client = sockets.poll_cheaply(httpx.AsyncClient(transport=given))
    assert client._transport is given


@pytest.mark.parametrize("raw", [
    "https://img3.gelbooru.com/images/ab/cd/abcd.png",
    "https://img3.gelbooru.com/images/a%20b.png?x=1&y=%2F",
    "https://img3.gelbooru.com/a/../b/./c.png",
    "http://gelbooru.com/x.png",
    "HTTPS://Gelbooru.COM:443/x.png",
    "https://gelbooru.com/x.png#frag",
    "//img3.gelbooru.com/y.png",
    "/images/z.png",
    "images/z.png",
])
def test_an_absolute_url_is_what_joining_it_gives(raw: str) -> None:
    base = httpx.URL("https://gelbooru.com/")
    url, joined = usable_url(raw, base), base.join(raw)
    assert url is not None

    def request_target(u: httpx.URL) -> tuple[str, str, int, bytes]:  # what is connected to and asked for
        return u.scheme, u.host, u.port or {"http": 80, "https": 443}[u.scheme], u.raw_path

    assert request_target(url) == request_target(joined)
    assert usable_url(raw, base) is usable_url(raw, base)  # remembered


@pytest.mark.parametrize("raw", ["", "   ", "https://gel\tbooru.com/x", "https://ｇelbooru.com/x", "https://[::1/x",
                                 "http://xn--a-/x", "https://a:b:c/x"])
def test_unusable_urls_stay_unusable(raw: str) -> None:
    assert usable_url(raw, httpx.URL("https://gelbooru.com/")) is None


def test_a_huge_url_is_checked_but_not_remembered() -> None:
    base = httpx.URL("https://gelbooru.com/")
    huge = "https://img3.gelbooru.com/images/" + "a" * 5000 + ".png"
    first, again = usable_url(huge, base), usable_url(huge, base)
    assert first is not None and str(first) == huge
    assert first is not again  # checked each time: a hostile site cannot fill memory with its fields
    assert usable_url("https://gel\tbooru.com/" + "a" * 5000, base) is None
