"""Direct tests of small parts every job and read relies on: the progress coalescer, the TTL cache
of upstream answers, the response cache of encoded reads, and the one md5 and atomic writer of files."""

from __future__ import annotations

import asyncio
import hashlib
import threading
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette
from starlette.responses import JSONResponse
from starlette.routing import Route

from app.api.response_cache import ResponseCache
from app.cache import TtlCache
from app.files import CHUNK, atomic_output, file_md5, write_bytes_atomic, write_text_atomic
from app.jobs.progress import Counters, ProgressTracker
from tests.conftest import wait_for

# --- ProgressTracker --------------------------------------------------------------------------------


async def test_progress_publishes_the_first_change_at_once_and_coalesces_the_rest() -> None:
    published: list[Counters] = []

    async def publish(c: Counters) -> None:
        published.append(c)

    tracker = ProgressTracker(publish, interval=0.2)
    tracker.update(done=1, total=10)
    await wait_for(lambda: len(published) == 1, timeout=2)
    for _ in range(50):
        tracker.update(done=1, nbytes=100)
    await wait_for(lambda: len(published) == 2, timeout=2)
    assert (published[-1].done, published[-1].total, published[-1].bytes) == (51, 51, 5000)  # total follows done
    await tracker.close()
    assert len(published) == 2  # nothing left unpublished, nothing published twice


async def test_progress_from_many_threads_counts_every_update() -> None:
    published: list[Counters] = []

    async def publish(c: Counters) -> None:
        published.append(c)

    tracker = ProgressTracker(publish, interval=0.05)

    def work() -> None:
        for _ in range(1000):
            tracker.update(done=1, nbytes=1)

    threads = [threading.Thread(target=work) for _ in range(4)]
    for t in threads:
        t.start()
    await asyncio.to_thread(lambda: [t.join() for t in threads])
    await tracker.close()
    assert tracker.snapshot().done == 4000 and tracker.snapshot().bytes == 4000
    assert published[-1].done == 4000 and len(published) < 200  # coalesced, the last one complete


# --- TtlCache -----------------------------------------------------------------------------------------


async def test_ttl_cache_loads_once_for_concurrent_callers_and_expires() -> None:
    cache: TtlCache[int] = TtlCache(ttl_seconds=0.2)
    calls = 0

    async def load() -> int:
        nonlocal calls
        calls += 1
        await asyncio.sleep(0.05)  # time itself: a slow load, so the other callers arrive while it runs
        return calls

    assert await asyncio.gather(*(cache.get_or_load("k", load) for _ in range(10))) == [1] * 10
    assert calls == 1 and cache.peek("k") == 1
    await wait_for(lambda: cache.peek("k") is None, timeout=2)
    assert await cache.get_or_load("k", load) == 2


async def test_ttl_cache_does_not_keep_errors_and_bounds_its_size() -> None:
    cache: TtlCache[str] = TtlCache(ttl_seconds=60, max_entries=3)

    async def fail() -> str:
        raise RuntimeError("upstream down")

    with pytest.raises(RuntimeError):
        await cache.get_or_load("x", fail)
    assert cache.peek("x") is None
    for key in "abcd":
        cache.put(key, key.upper())
    assert [cache.peek(k) for k in "abcd"] == [None, "B", "C", "D"]  # the oldest went first


# --- ResponseCache ------------------------------------------------------------------------------------


def app_with_cache(ttl: float) -> tuple[Any, list[str]]:
    seen: list[str] = []

    async def info(request: Any) -> JSONResponse:
        seen.append(request.url.path)
        status = 404 if request.path_params["aid"] == "0" else 200
        return JSONResponse({"aid": request.path_params["aid"], "n": len(seen)}, status_code=status)

    inner = Starlette(routes=[Route("/v1/info/{aid}", info), Route("/v1/jobs/{aid}", info)])
    return ResponseCache(inner, ttl_seconds=ttl), seen


async def test_response_cache_replays_successful_reads_only() -> None:
    app, seen = app_with_cache(60)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as client:
        first = await client.get("/v1/info/7")
        again = await client.get("/v1/info/7")
        assert first.json() == again.json() == {"aid": "7", "n": 1} and seen == ["/v1/info/7"]
        await client.get("/v1/info/0")
        await client.get("/v1/info/0")  # a 404 is not kept
        await client.get("/v1/jobs/7")
        await client.get("/v1/jobs/7")  # job state is never cached
        assert seen == ["/v1/info/7", "/v1/info/0", "/v1/info/0", "/v1/jobs/7", "/v1/jobs/7"]
        await client.get("/v1/info/7", params={"x": "1"})  # another query is another answer
        assert seen[-1] == "/v1/info/7"


async def test_response_cache_expires_and_zero_ttl_turns_it_off() -> None:
    app, seen = app_with_cache(0.2)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as client:
        await client.get("/v1/info/7")
        past_ttl = time.monotonic() + 0.25
        await wait_for(lambda: time.monotonic() > past_ttl, timeout=2)
        assert (await client.get("/v1/info/7")).json()["n"] == 2
    app, seen = app_with_cache(0)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as client:
        await client.get("/v1/info/7")
        await client.get("/v1/info/7")
    assert len(seen) == 2


# --- app.files ------------------------------------------------------------------------------------


def test_file_md5_reads_in_chunks_and_atomic_writes_leave_only_the_file(tmp_path: Path) -> None:
    data = bytes(range(256)) * (CHUNK // 256 * 2 + 3)  # more than two chunks, and a partial one
    (tmp_path / "big.bin").write_bytes(data)
    assert file_md5(tmp_path / "big.bin") == hashlib.md5(data).hexdigest()
    with pytest.raises(FileNotFoundError):
        file_md5(tmp_path / "missing.bin")

    write_text_atomic(tmp_path / "a.txt", "caption ü\n")
    write_text_atomic(tmp_path / "a.txt", "replaced")
    write_bytes_atomic(tmp_path / "b.bin", b"page")
    assert (tmp_path / "a.txt").read_text(encoding="utf-8") == "replaced"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.txt", "b.bin", "big.bin"]  # no temporary left


def test_atomic_output_publishes_only_a_complete_file(tmp_path: Path) -> None:
    dest = tmp_path / "x.zip"
    with atomic_output(dest) as part:
        assert part.name == "x.zip.part"  # the archive folder's clean-up knows an archive in progress by it
        part.write_bytes(b"whole")
    assert dest.read_bytes() == b"whole"
    with pytest.raises(RuntimeError), atomic_output(dest) as part:
        part.write_bytes(b"half")
        raise RuntimeError("the build failed")
    assert dest.read_bytes() == b"whole" and sorted(p.name for p in tmp_path.iterdir()) == ["x.zip"]
