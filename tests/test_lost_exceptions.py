"""Errors nobody reads and cancels that hang (issue 19, item 8): a store call or a blocking write
whose caller was cancelled fails later without "Task exception was never retrieved"; the sweep says
once that Redis is away instead of a traceback per pass; a cancel that lands while a finished job
is being wrapped up never leaves the job running (the rare 10 s DELETE)."""

from __future__ import annotations

import asyncio
import errno
import functools
import gc
import logging
import threading
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis

from app.blocking import BlockingPool
from app.jobs.cleanup import start_cleanup
from app.jobs.kinds.album import AlbumSpec
from app.jobs.models import Job, new_job_id
from app.jobs.redis import build_redis_service
from app.jobs.redis.store import RedisJobStore, connect
from app.jobs.service import JobService
from app.storage import Storage
from tests.cluster import RedisServer
from tests.conftest import app_client, make_settings, wait_for
from tests.fakes.jm import FakeAlbum, JmDouble


@pytest.fixture
async def loop_reports() -> AsyncIterator[list[dict[str, Any]]]:
    """What the event loop reports to its exception handler (where "never retrieved" goes)."""
    reports: list[dict[str, Any]] = []
    loop = asyncio.get_running_loop()
    loop.set_exception_handler(lambda _loop, context: reports.append(context))
    yield reports
    loop.set_exception_handler(None)


async def _collected(reports: list[dict[str, Any]]) -> list[str]:
    for _ in range(3):
        gc.collect()
        await asyncio.sleep(0.05)  # a negative check: late callbacks get their time before the next collection
    return [str(r.get("message")) for r in reports]


def others_ended() -> bool:
    """Whether every task but the test's own has ended (a call left running included)."""
    return asyncio.all_tasks() <= {asyncio.current_task()}


async def test_a_store_call_cut_off_by_an_outage_after_its_caller_left_is_read(
    redis_server: RedisServer, loop_reports: list[dict[str, Any]]
) -> None:
    store = RedisJobStore(connect(redis_server.url))
    job = Job.for_spec(AlbumSpec(album_id="191920"), new_job_id())
    await store.put(job)
    admin = redis.Redis(port=redis_server.port)
    admin.execute_command("CLIENT", "PAUSE", "5000", "WRITE")  # the update's write hangs in Redis...

    def mutate(j: Job) -> None:
        j.message = "changed"

    caller = asyncio.create_task(store.update(job.job_id, mutate))
    await wait_for(lambda: any("b" in c["flags"] for c in admin.client_list()),  # "b": blocked by the pause
                   message="the update never reached Redis")
    admin.close()
    caller.cancel()  # ...its caller goes away (a socket closed, a request timed out)...
    with pytest.raises(asyncio.CancelledError):
        await caller
    redis_server.kill()  # ...and the call it left running fails with the outage
    await wait_for(others_ended, message="the store call left running never ended")
    assert not [m for m in await _collected(loop_reports) if "never retrieved" in m]
    await store.close()


async def test_a_blocking_write_failing_at_enospc_after_its_caller_left_is_read(
    loop_reports: list[dict[str, Any]],
) -> None:
    pool = BlockingPool(1, "test-writes")
    started, release = threading.Event(), threading.Event()

    def write() -> None:
        started.set()
        release.wait(5)
        raise OSError(errno.ENOSPC, "No space left on device")

    caller = asyncio.create_task(pool.run_to_end(write))
    await asyncio.to_thread(started.wait, 5)
    caller.cancel()
    await asyncio.sleep(0)  # one loop turn: the cancel lands, and the caller waits for the write
    release.set()
    with pytest.raises(asyncio.CancelledError):
        await caller
    pool.shutdown(wait=True)
    assert not [m for m in await _collected(loop_reports) if "never retrieved" in m]


async def test_the_sweep_says_once_that_redis_is_away(
    tmp_path: Path, redis_server: RedisServer, caplog: pytest.LogCaptureFixture
) -> None:
    settings = make_settings(tmp_path / "data", redis_url=redis_server.url)
    storage = Storage(settings.data_path)
    storage.prepare()
    files = BlockingPool(1, "test-files")
    service = build_redis_service(settings, storage, {}, files)
    redis_server.kill()
    caplog.set_level(logging.DEBUG, logger="jmbooru.cleanup")
    caplog.set_level(logging.DEBUG, logger="jmbooru.redis")
    scheduler = start_cleanup(service, 0.05)
    try:
        def cleanup_lines() -> list[logging.LogRecord]:
            return [r for r in caplog.records if r.name == "jmbooru.cleanup" and r.levelno >= logging.WARNING]

        async def warned() -> bool:
            return bool(cleanup_lines())

        async def swept_again() -> bool:  # every sweep starts by listing the jobs
            return sum("op=list_states" in r.getMessage() for r in caplog.records) >= 5

        await wait_for(warned, timeout=10)
        await wait_for(swept_again, timeout=20)
        lines = cleanup_lines()
        assert len(lines) == 1 and lines[0].exc_info is None, [r.getMessage() for r in lines]
        assert "Redis" in lines[0].getMessage()
    finally:
        scheduler.shutdown(wait=False)
        await service._store.close()
        files.shutdown()


async def test_a_cancel_landing_as_a_job_finishes_never_waits_ten_seconds(tmp_path: Path, jm_double: JmDouble) -> None:
    settings = make_settings(tmp_path / "data", jm_double)
    async with app_client(settings) as client:
        jobs: JobService = client.app.state.jobs  # type: ignore[attr-defined]
        archives = jobs._storage.archive_root

        def archived(job_id: str) -> bool:
            return any(job_id[:10] in p.name and not p.name.endswith(".part") for p in archives.iterdir())

        # Sweep the cancel across the moments around the end of the download: right as the
        # archive appears, then one event-loop turn later, and so on.
        for turns in range(12):
            album_id = str(191930 + turns)
            jm_double.add_album(FakeAlbum.single(album_id, f"Ends As Cancelled {turns}", 1))
            resp = await client.post(f"/v1/download/album/{album_id}")
            job_id = resp.json()["job_id"]
            await wait_for(functools.partial(archived, job_id), timeout=30, interval=0,  # every loop turn
                           message="the archive never appeared")
            for _ in range(turns):
                await asyncio.sleep(0)
            started = time.monotonic()
            ended = await jobs.cancel(job_id)
            took = time.monotonic() - started
            assert ended.state.final, (turns, ended.state)
            assert took < 3.0, f"cancel after {turns} loop turns took {took:.1f} s"
            polled = await client.get(f"/v1/jobs/{job_id}")
            assert polled.json()["state"] in ("ready", "cancelled", "expired"), polled.text
            assert isinstance(polled, httpx.Response)


async def test_a_failed_publication_of_a_cancelled_dataset_download_is_read(
    tmp_path: Path, loop_reports: list[dict[str, Any]], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A worker's publication fails (a full disk) while the worker already fetches its next image, and
    the download is cancelled before the worker looks: the failure is read, not reported as lost."""
    from app.sources.dataset import DatasetDownload, download_dataset
    from tests.conftest import site_for
    from tests.fakes.gelbooru import GelbooruDouble, make_post

    failed = threading.Event()

    def full_disk(part: Path | None, path: Path, caption_text: str | None) -> None:
        failed.set()
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(DatasetDownload, "publish", staticmethod(full_disk))
    # Newest first: the small post 2 is fetched (and its publication fails), then post 1 hangs part-way.
    with GelbooruDouble([make_post(2, ["1girl"], image_bytes=2000),
                         make_post(1, ["1girl"], image_bytes=1_300_000)]) as gb:
        gb.image_stall = (1_150_000, 3.0)
        site = site_for(gb)
        try:
            task = asyncio.create_task(download_dataset(site, "1girl", tmp_path, max_images=2, workers=1))
            await wait_for(lambda: failed.is_set() and any(n.endswith(".part") for n in _names(tmp_path)),
                           timeout=10, interval=0.01, message="the publication did not fail beside the next fetch")
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task
        finally:
            await site.aclose()
    assert not [m for m in await _collected(loop_reports) if "never retrieved" in m]
    assert not any(n.endswith(".part") for n in _names(tmp_path))


def _names(folder: Path) -> list[str]:
    return [p.name for p in folder.iterdir()]
