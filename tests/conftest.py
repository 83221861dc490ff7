"""Shared fixtures: upstream doubles on loopback, settings pointing at them, app clients, live servers."""

from __future__ import annotations

import asyncio
import inspect
import itertools
import os
import random
import socket
import subprocess
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager, contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn

from app.config import Settings
from app.main import create_app
from app.sources.booru.base import BooruSite
from app.sources.booru.files import ImagePools
from app.sources.booru.registry import build_site
from tests.fakes.jm import JmDouble

# Every booru site points at a closed loopback port unless a test says otherwise: no test reaches the internet.
NOWHERE = "http://127.0.0.1:9"
BOORU_URLS = {f"{name}_url": NOWHERE for name in ("gelbooru", "safebooru", "danbooru", "yandere", "konachan")}


_PORTS_PER_WORKER = 1500
_next_port = itertools.count(random.randrange(_PORTS_PER_WORKER))


def free_port() -> int:
    """A loopback port nobody uses now, for a server a test is about to start.

    Not bind(0)'s answer: the kernel hands a port just released to whoever asks next, and under
    pytest-xdist that was once the other worker, whose server then took it first. Each worker takes
    ports from a block of its own below the kernel's ephemeral range (32768 and up, where bind(0)
    and outgoing connections get theirs), in turn, skipping any in use.
    """
    worker = os.environ.get("PYTEST_XDIST_WORKER", "gw0").removeprefix("gw")
    base = 20000 + (int(worker) % 8 if worker.isdigit() else 0) * _PORTS_PER_WORKER
    for _ in range(_PORTS_PER_WORKER):
        port = base + next(_next_port) % _PORTS_PER_WORKER
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    raise RuntimeError(f"no free loopback port between {base} and {base + _PORTS_PER_WORKER}")


@contextmanager
def dead_port() -> Iterator[int]:
    """A loopback port that refuses connections for as long as the block runs.

    The socket is bound but never listens: a connect gets RST at once, and no other test (or xdist worker) can
    bind the port meanwhile, which a merely "free" port does not promise.
    """
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        yield int(s.getsockname()[1])


@pytest.fixture
def jm_double() -> Iterator[JmDouble]:
    with JmDouble() as double:
        yield double


@pytest.fixture
def image_pools() -> Iterator[ImagePools]:
    """The pools a site's ``download_image`` writes in (the Engine's in a server), for one test."""
    with ImagePools.create() as pools:
        yield pools


def make_settings(data_dir: Path, jm: JmDouble | None = None, **overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "data_dir": data_dir,
        "jm_scheme": "http",
        "jm_retry_times": 0,
        "jm_timeout_seconds": 5,
        "cache_ttl_seconds": 60,
        **BOORU_URLS,
        "cleanup_interval_seconds": 3600,
        "shutdown_grace_seconds": 1,
        "download_workers": 4,
        "album_image_threads": 4,
        "gc_freeze": False,
    }
    # No test may reach JM: without a double, the JM domains are a loopback port nobody listens on
    # (the server builds its JM client at start-up, whatever the test is about).
    host = jm.host if jm is not None else "127.0.0.1:9"
    values["jm_api_domains"] = [host]
    values["jm_image_domains"] = [host]
    values.update(overrides)
    return Settings(_env_file=None, **values)  # type: ignore[call-arg]


def site_for(double: Any, site: str = "gelbooru", **overrides: Any) -> BooruSite:
    """A site of the registry pointed at a loopback double, fast (no rate limit, short back-off)."""
    options: dict[str, Any] = {"rate": 1000, "backoff_base": 0.01}
    if double is not None:
        options["url"] = double.base_url
    if getattr(double, "require_credentials", False):
        options.update(api_key=double.api_key, user_id=double.user_id)
    options.update(overrides)
    return build_site(site, Settings(_env_file=None, **BOORU_URLS), **options)  # type: ignore[call-arg]


@pytest.fixture
def settings(tmp_path: Path, jm_double: JmDouble) -> Settings:
    return make_settings(tmp_path / "data", jm_double)


@asynccontextmanager
async def app_client(settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    """An httpx client over ASGITransport with the app's lifespan running."""
    app = create_app(settings)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
            client.app = app  # type: ignore[attr-defined]
            yield client


@pytest.fixture
async def client(settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    async with app_client(settings) as c:
        yield c


class LiveServer:
    """A real uvicorn server on a free loopback port, in a thread with its own event loop."""

    def __init__(self, settings: Settings, **uvicorn_options: Any) -> None:
        self.settings = settings
        self.port = free_port()
        self.app = create_app(settings)
        options: dict[str, Any] = {"log_level": "warning", "ws_per_message_deflate": False, "lifespan": "on"}
        options.update(uvicorn_options)
        config = uvicorn.Config(self.app, host="127.0.0.1", port=self.port, **options)
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def ws_url(self) -> str:
        return f"ws://127.0.0.1:{self.port}"

    def start(self) -> LiveServer:
        self.thread.start()

        def started() -> bool:
            assert self.thread.is_alive(), "uvicorn's thread ended before the server started"
            return bool(self.server.started)

        wait_until(started, timeout=15, interval=0.02, message="uvicorn did not start")
        return self

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=20)
        assert not self.thread.is_alive(), "the server did not shut down"

    def __enter__(self) -> LiveServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


@pytest.fixture
def live(settings: Settings) -> Iterator[LiveServer]:
    with LiveServer(settings) as server:
        yield server


# What a failed wait says: a sentence, or a function called at the moment of failure (a log read then).
Message = str | Callable[[], str]


def _timed_out(message: Message, timeout: float) -> AssertionError:
    return AssertionError(f"{message() if callable(message) else message} (waited {timeout:g} s)")


def wait_until(predicate: Callable[[], Any], timeout: float = 10.0, interval: float = 0.05, *,
               message: Message = "condition not met in time",
               pause: Callable[[float], object] = time.sleep) -> Any:
    """Call ``predicate`` until it returns something true, and return that; fail with ``message``
    after ``timeout`` seconds. A predicate that raises ends the wait with its error (an assertion
    that a process is still alive fails at once). ``pause`` waits between calls (Playwright's sync
    API delivers its events only while one of its own calls waits)."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise _timed_out(message, timeout)
        pause(interval)


async def wait_for(predicate: Callable[[], Any], timeout: float = 10.0, interval: float = 0.05, *,
                   message: Message = "condition not met in time") -> Any:
    """The asyncio twin of ``wait_until``: ``predicate`` may be a coroutine function (or return an
    awaitable); ``interval=0`` checks once per event-loop turn."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if inspect.isawaitable(value):
            value = await value
        if value:
            return value
        if time.monotonic() > deadline:
            raise _timed_out(message, timeout)
        await asyncio.sleep(interval)


def answers(url: str, *, any_status: bool = False) -> bool:
    """Whether a GET of ``url`` is answered now: with 200, or with anything when ``any_status``."""
    try:
        status = httpx.get(url, timeout=1).status_code
    except httpx.HTTPError:
        return False
    return any_status or status == 200


def wait_serving(base_url: str, proc: subprocess.Popen[Any] | None = None, *,
                 log: Path | Callable[[], str] | None = None, timeout: float = 30.0,
                 path: str = "/v1/health") -> None:
    """Wait until a server a test started answers ``GET base_url + path`` with 200. If its process
    exits first, fail at once; either failure shows the server's log."""

    def said() -> str:
        if log is None:
            return ""
        return log.read_text(errors="replace") if isinstance(log, Path) else log()

    def up() -> bool:
        if proc is not None and proc.poll() is not None:
            raise AssertionError(f"the server exited ({proc.returncode}) before {base_url} answered:\n{said()}")
        return answers(base_url + path)

    wait_until(up, timeout, 0.1, message=lambda: f"{base_url}{path} did not answer 200:\n{said()}")


# Redis servers of our own (tests/cluster.py), one per test: the scale-out and outage tests.


@pytest.fixture
def redis_server(tmp_path: Path) -> Iterator[Any]:
    from tests.cluster import RedisServer  # here: tests.cluster itself imports this module

    server = RedisServer(tmp_path)
    yield server
    server.stop()


@pytest.fixture
def volatile_redis(redis_server: Any) -> Any:
    """A Redis that keeps nothing across a restart."""
    return redis_server


@pytest.fixture
def persistent_redis(tmp_path: Path) -> Iterator[Any]:
    """A Redis with an append-only file: what it held is back after a restart."""
    from tests.cluster import RedisServer

    server = RedisServer(tmp_path, appendonly=True)
    yield server
    server.stop()
