"""The booru client's connections, asked cheaply whether an idle one was closed by the server.

Before every request and after every response, httpcore's connection pool asks each idle
connection whether its socket is readable (a server that closed a kept-alive connection leaves it
readable). Through anyio, every one of those questions rebuilds the stream's typed attributes to
find the socket, then makes a new ``select.poll`` object: with 16 dataset workers that was a fifth
of the command line's CPU time, more than parsing the answers (the scan is upstream's known cost,
encode/httpcore#928). ``PolledBackend`` wraps the pool's network backend so that each connection
finds its socket once and keeps one poll object for it; the answer is the same.

The same streams read up to ``READ_BYTES`` at a time where httpcore asks for 64 KiB: an image
body already waiting in the socket (asyncio's transport reads up to 256 KiB at once) is handed over
whole instead of being cut into 64 KiB pieces, each copied off the rest and each a trip through the
HTTP parser, the loop and the file writer (8 % of the event loop's CPU for a 250-image download of
200 kB images, measured alternately).
"""

from __future__ import annotations

import contextlib
import importlib
import select
import socket
import typing

import httpcore
import httpx

READ_BYTES = 256 * 1024  # asyncio's selector transport's own largest read


class _PolledStream(httpcore.AsyncNetworkStream):
    def __init__(self, inner: httpcore.AsyncNetworkStream) -> None:
        self._inner = inner
        self._socket: socket.socket | None = inner.get_extra_info("socket")
        self._poll: typing.Any = None
        if self._socket is not None and hasattr(select, "poll"):
            self._poll = select.poll()
            self._poll.register(self._socket, select.POLLIN)

    async def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        return await self._inner.read(max(max_bytes, READ_BYTES), timeout)

    async def write(self, buffer: bytes, timeout: float | None = None) -> None:
        await self._inner.write(buffer, timeout)

    async def aclose(self) -> None:
        await self._inner.aclose()

    async def start_tls(self, ssl_context: typing.Any, server_hostname: str | None = None,
                        timeout: float | None = None) -> httpcore.AsyncNetworkStream:
        return _PolledStream(await self._inner.start_tls(ssl_context, server_hostname, timeout))

    def get_extra_info(self, info: str) -> typing.Any:
        if info == "is_readable" and self._poll is not None:
            assert self._socket is not None
            # A closed socket reads as readable, as in httpcore: its next read returns b"".
            return self._socket.fileno() < 0 or bool(self._poll.poll(0))
        return self._inner.get_extra_info(info)


class PolledBackend(httpcore.AsyncNetworkBackend):
    """A network backend whose streams answer "is_readable" with one poll (see the module)."""

    def __init__(self, inner: httpcore.AsyncNetworkBackend) -> None:
        self._inner = inner

    async def connect_tcp(self, host: str, port: int, timeout: float | None = None,
                          local_address: str | None = None,
                          socket_options: typing.Iterable[typing.Any] | None = None) -> httpcore.AsyncNetworkStream:
        return _PolledStream(await self._inner.connect_tcp(host, port, timeout, local_address, socket_options))

    async def connect_unix_socket(self, path: str, timeout: float | None = None,
                                  socket_options: typing.Iterable[typing.Any] | None = None
                                  ) -> httpcore.AsyncNetworkStream:
        return _PolledStream(await self._inner.connect_unix_socket(path, timeout, socket_options))

    async def sleep(self, seconds: float) -> None:
        await self._inner.sleep(seconds)


def poll_cheaply(client: httpx.AsyncClient) -> httpx.AsyncClient:
    """Make the connections of ``client``'s own transports (direct, and through proxies) polled
    cheaply; a transport the caller gave is left alone. httpx takes no network backend, and a
    transport of our own would cost the environment's proxies (HTTPS_PROXY, NO_PROXY), so the backend
    httpcore's pool made is wrapped in place; should a later httpx or httpcore name these parts
    differently, the client stays as httpx made it (slower, never wrong)."""
    transports = [getattr(client, "_transport", None), *getattr(client, "_mounts", {}).values()]
    for transport in transports:
        if type(transport) is not httpx.AsyncHTTPTransport:
            continue
        pool = getattr(transport, "_pool", None)
        backend = getattr(pool, "_network_backend", None)
        if isinstance(backend, httpcore.AsyncNetworkBackend) and not isinstance(backend, PolledBackend):
            pool._network_backend = PolledBackend(backend)  # type: ignore[union-attr]
    return client


def load_network_backend() -> None:
    """Import now what httpcore imports on a client's first connection under asyncio: its anyio
    backend and anyio's own asyncio backend (~15 ms here). The command line calls this before it
    loads the rest of a download in a thread beside its first request: imported then, by the loop's
    thread, they would slow that request down as the two threads take turns. Should a later httpcore
    or anyio name these modules differently, the first request is only a little later."""
    for name in ("httpcore._backends.anyio", "anyio._backends._asyncio"):
        with contextlib.suppress(ImportError):
            importlib.import_module(name)
