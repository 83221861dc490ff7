"""``app.sources.album.download_album``, the plain function behind album jobs and ``jmbooru jm``."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from app.blocking import BlockingPool
from app.config import Settings
from app.sources import jm as jm_source
from app.sources.album import download_album
from app.sources.jm_pages import PageFetching, SessionPool
from tests.conftest import wait_for
from tests.fakes.jm import JmDouble


class Counting:
    def __init__(self) -> None:
        self.done = 0
        self.total: int | None = None
        self.title: str | None = None

    def update(self, *, done: int = 0, total: int | None = None, nbytes: int = 0, title: str | None = None) -> None:
        self.done += done
        self.total = total if total is not None else self.total
        self.title = title or self.title


async def test_pages_come_back_per_chapter_in_reading_order_over_reused_connections(
    settings: Settings, jm_double: JmDouble, tmp_path: Path,
) -> None:
    jm_source.apply_module_settings(settings)
    pool, pages = BlockingPool(2, "jm"), PageFetching(64 * 1024 * 1024)
    try:
        progress = Counting()
        album = await download_album(settings, "600001", tmp_path / "a", pool=pool, pages=pages, progress=progress)
        assert [(c.photo_id, c.title, len(c.pages)) for c in album.chapters] == [("600001", "Part 1", 3),
                                                                                  ("600002", "Part 2", 4)]
        assert [p.name for p in album.chapters[1].pages] == ["00001.webp", "00002.webp", "00003.webp", "00004.webp"]
        assert album.title == progress.title == "Scrambled Two Chapters" and album.authors == ["Kim"]
        assert progress.done == progress.total == 7
        assert album.cover is not None and album.cover.read_bytes() == jm_double.cover_bytes("600001", "_3x4")
        assert not [p for p in (tmp_path / "a").rglob("*") if p.is_file() and p.suffix not in (".webp", ".jpg")]
        first = pages.sessions.created
        assert 1 <= first <= settings.album_image_threads + 1  # the pages' threads, and the cover beside them
        again = await download_album(settings, "100001", tmp_path / "b", pool=pool, pages=pages,
                                     chapters=("100001",))
        assert [len(c.pages) for c in again.chapters] == [5]
        assert pages.sessions.created <= settings.album_image_threads + 1  # idle sessions were taken again
    finally:
        pool.shutdown(wait=True)
        pages.close()


async def test_a_recent_album_detail_is_used_unless_it_lacks_a_wanted_chapter(
    settings: Settings, jm_double: JmDouble, tmp_path: Path,
) -> None:
    jm_source.apply_module_settings(settings)
    pool, pages = BlockingPool(2, "jm"), PageFetching(64 * 1024 * 1024)
    source = jm_source.JmSource(settings, pool)
    try:
        await source.album("600001")  # the API's look-up
        first, second = source.recent_album_detail("600001"), source.recent_album_detail("600001")
        assert first is not None and second is not None and first is not second  # each download its own copy
        assert source.recent_album_detail("100001") is None
        jm_double.reset_hits()
        album = await download_album(settings, "600001", tmp_path / "a", pool=pool, pages=pages, album_detail=first)
        assert album.page_count == 7 and album.title == "Scrambled Two Chapters"
        assert jm_double.hits("/album") == 0
        # A detail from before chapter 600002 existed (as a look-up minutes ago could be): JM is asked.
        stale = source.recent_album_detail("600001")
        stale.episode_list = [e for e in stale.episode_list if str(e[0]) != "600002"]
        again = await download_album(settings, "600001", tmp_path / "b", pool=pool, pages=pages,
                                     chapters=("600002",), album_detail=stale)
        assert [(c.photo_id, len(c.pages)) for c in again.chapters] == [("600002", 4)]
        assert jm_double.hits("/album") == 1
    finally:
        pool.shutdown(wait=True)
        pages.close()


def test_a_pooled_session_keeps_its_connection_after_its_thread_ends(jm_double: JmDouble) -> None:
    """jmcomic starts new image threads for every chapter and every job: a kept session must keep
    its connection (and its curl handle) when the thread that used it ends, or nothing is reused
    and every thread's exit closes connections while the job waits (issue 26)."""
    sessions = SessionPool(4)
    url = f"{jm_double.base_url}/media/photos/100001/{jm_double.image_name(1)}"
    statuses: list[int] = []

    def get() -> None:
        with sessions.session() as session:
            statuses.append(session.get(url).status_code)

    before = jm_double.connections
    try:
        for _ in range(3):
            thread = threading.Thread(target=get)
            thread.start()
            thread.join()
    finally:
        sessions.close()
    assert statuses == [200, 200, 200]
    assert sessions.created == 1
    assert jm_double.connections - before == 1


async def test_a_page_that_keeps_failing_fails_the_album_with_a_sentence(
    settings: Settings, jm_double: JmDouble, tmp_path: Path,
) -> None:
    from app.errors import UpstreamError

    jm_source.apply_module_settings(settings)
    pool, pages = BlockingPool(2, "jm"), PageFetching(64 * 1024 * 1024)
    jm_double.fail("/media/photos/100001/00003.webp", status=502)
    try:
        with pytest.raises(UpstreamError, match="Some pages of album 100001 could not be downloaded"):
            await download_album(settings, "100001", tmp_path, pool=pool, pages=pages)
    finally:
        pool.shutdown(wait=True)
        pages.close()
    assert not (tmp_path / "pages" / "100001" / "00003.webp").exists()  # no partial page left behind


async def test_a_cover_that_fails_leaves_no_file_and_the_album_downloads(
    settings: Settings, jm_double: JmDouble, tmp_path: Path,
) -> None:
    """The cover comes over the pages' kept-alive connections; its failure (after jmcomic's retries)
    is only logged, and no half-written cover.jpg is left for the archive to pick up."""
    jm_source.apply_module_settings(settings)
    pool, pages = BlockingPool(2, "jm"), PageFetching(64 * 1024 * 1024)
    jm_double.fail("/media/albums/100001", status=502)
    try:
        album = await download_album(settings, "100001", tmp_path, pool=pool, pages=pages)
    finally:
        pool.shutdown(wait=True)
        pages.close()
    assert album.page_count == 5 and album.cover is None
    assert not (tmp_path / "cover.jpg").exists()
    assert jm_double.hits("/media/albums/100001") == settings.jm_retry_times + 1  # tried as jmcomic would


async def test_a_cancel_while_the_cover_is_still_coming_returns_after_its_thread_wrote(
    settings: Settings, jm_double: JmDouble, tmp_path: Path,
) -> None:
    # The pages are done and the cover is slow: a cancel lands while the album waits for it. The
    # job removes the work folder as soon as this returns, so the cover's thread must be done by
    # then, or it would make the folder again after "cancelled" was announced.
    import asyncio

    jm_source.apply_module_settings(settings)
    pool, pages = BlockingPool(4, "jm"), PageFetching(64 * 1024 * 1024)
    jm_double.set_latency(1.0, "/media/albums/100001")
    progress = Counting()
    work = tmp_path / "work"
    try:
        task = asyncio.create_task(download_album(settings, "100001", work, pool=pool, pages=pages,
                                                  progress=progress))
        await wait_for(lambda: progress.total and progress.done == progress.total
                       and jm_double.hits("/media/albums/100001"),
                       timeout=20, interval=0.02, message="the pages did not arrive")
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        assert (work / "cover.jpg").is_file()  # written before the cancelled download returned
    finally:
        pool.shutdown(wait=True)
        pages.close()
