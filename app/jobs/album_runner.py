"""Runs an album job: jmcomic downloads (and descrambles) every page into the job's folder."""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import os
import threading
import time
from pathlib import Path
from typing import Any, Literal

import jmcomic
from jmcomic import DownloadControl, JmDownloader

from app.blocking import BlockingPool
from app.config import Settings
from app.errors import DiskFull, UpstreamError, UpstreamRateLimited
from app.jobs.progress import ProgressTracker
from app.jobs.runner import RunContext, RunOutput
from app.sources.jm import build_option, translate_error
from app.storage import safe_component

log = logging.getLogger("jmbooru.jm")

Layout = Literal["flat", "chapters"]
LAYOUTS: tuple[Layout, ...] = ("flat", "chapters")
COVER_NAME = "cover.jpg"
MAX_ATTEMPTS = 3  # one download and up to two more after JM said Retry-After


class _Pages:
    """What jmcomic wrote, recorded from its hooks (which run in its worker threads)."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.title = ""
        self.chapters: list[tuple[str, str]] = []  # (photo_id, title) in reading order
        self.files: dict[str, dict[int, Path]] = {}  # photo_id -> {page index: path}
        self.cover: concurrent.futures.Future[Path | None] | None = None


def _downloader_class(progress: ProgressTracker, pages: _Pages, pool: BlockingPool,
                      cover_path: Path) -> type[JmDownloader]:
    class ReportingDownloader(JmDownloader):
        def before_album(self, album: Any) -> None:
            super().before_album(album)
            with pages.lock:
                pages.title = str(album.name)
                pages.chapters = [(str(pid), str(title)) for pid, _sort, title in album.episode_list]
            progress.update(total=int(album.page_count), title=str(album.name))
            # The cover comes alongside the pages, not before them: it costs no extra round trip.
            pages.cover = pool.submit(_fetch_cover, self.client, str(album.album_id), cover_path)

        def after_image(self, image: Any, img_save_path: str) -> None:
            super().after_image(image, img_save_path)
            path = Path(img_save_path)
            with pages.lock:
                chapter = pages.files.setdefault(str(image.from_photo.photo_id), {})
                seen = int(image.index) in chapter  # kept from an earlier attempt (after a Retry-After)
                chapter[int(image.index)] = path
            if not seen:
                progress.update(done=1, nbytes=os.path.getsize(path))

    return ReportingDownloader


def _fetch_cover(client: Any, album_id: str, path: Path) -> Path | None:
    """The album's cover as ``cover.jpg`` (the newest watch app shows it); optional: a failure is logged."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        client.download_album_cover(album_id, str(path), size="_3x4")  # as /v1/get/cover serves it
    except Exception as exc:
        log.info("cover not downloaded album_id=%s error=%s", album_id, type(exc).__name__)
        return None
    return path if path.is_file() and path.stat().st_size > 0 else None


class AlbumRunner:
    def __init__(self, settings: Settings, pool: BlockingPool) -> None:
        self.settings = settings
        self.pool = pool

    async def _download(self, album_id: str, download: Any, control: DownloadControl, pages: _Pages,
                        ctx: RunContext) -> None:
        future = asyncio.ensure_future(self.pool.run(download))
        try:
            await asyncio.shield(future)
        except asyncio.CancelledError:
            # Stop jmcomic's threads cooperatively, and let them finish before the folder goes.
            control.cancel("job cancelled")
            await asyncio.gather(future, _settled(pages.cover), return_exceptions=True)
            raise
        except jmcomic.PartialDownloadFailedException as exc:
            await _settled(pages.cover)
            error = translate_error(exc)
            if isinstance(error, DiskFull | UpstreamRateLimited):
                raise error from exc
            done = sum(len(v) for v in pages.files.values())
            raise UpstreamError(
                f"Some pages of album {album_id} could not be downloaded from JM after retries "
                f"({done} of {ctx.progress.snapshot().total} arrived): {error.detail}"
            ) from exc
        except jmcomic.DownloadCancelledException:
            await _settled(pages.cover)
            raise asyncio.CancelledError() from None
        except Exception as exc:
            await _settled(pages.cover)
            raise translate_error(exc) from exc

    async def run(self, ctx: RunContext) -> RunOutput:
        album_id = str(ctx.job.params["album_id"])
        layout: Layout = ctx.job.params.get("layout") or "flat"
        option = build_option(self.settings, base_dir=ctx.work_dir / "pages")
        control = DownloadControl()
        pages = _Pages()
        downloader = _downloader_class(ctx.progress, pages, self.pool, ctx.work_dir / COVER_NAME)

        def download() -> None:
            jmcomic.download_album(album_id, option, downloader=downloader, control=control)

        for attempt in range(1, MAX_ATTEMPTS + 1):
            try:
                await self._download(album_id, download, control, pages, ctx)
                break
            except UpstreamRateLimited as exc:
                # JM asked us to wait: wait (within bounds, saying so), then go on where we were.
                wait = exc.retry_after
                if attempt == MAX_ATTEMPTS or wait is None or wait > self.settings.upstream_max_retry_after_seconds:
                    raise
                resume = time.strftime("%H:%M:%S", time.localtime(time.time() + wait))
                ctx.progress.update(message=f"JM is rate-limiting this server; retrying at {resume}.")
                log.info("album rate limited album_id=%s wait=%.0f", album_id, wait)
                await asyncio.sleep(wait)
                ctx.progress.update(message="Downloading.")

        cover = await _settled(pages.cover)
        return album_output(album_id, pages.title, pages.chapters, pages.files, cover, layout)


async def _settled(future: concurrent.futures.Future[Path | None] | None) -> Path | None:
    if future is None:
        return None
    try:
        return await asyncio.shield(asyncio.wrap_future(future))
    except Exception:
        return None


def album_output(album_id: str, title: str, chapters: list[tuple[str, str]],
                 files: dict[str, dict[int, Path]], cover: Path | None, layout: Layout) -> RunOutput:
    """The archive entries in reading order.

    ``flat`` is the seed's layout, which real clients read: every page at the top level, numbered
    continuously across chapters (``00001.webp``, ...), each with its own extension, plus
    ``cover.jpg``. ``chapters`` puts each chapter in a folder ``NNN <chapter title>/``.
    """
    entries: list[tuple[str, Path]] = [(COVER_NAME, cover)] if cover is not None else []
    chapters = chapters or [(pid, pid) for pid in files]
    width = max(3, len(str(len(chapters))))
    number = 0
    for chapter_number, (photo_id, chapter_title) in enumerate(chapters, start=1):
        folder = f"{chapter_number:0{width}d} {safe_component(chapter_title, fallback=photo_id, max_length=80)}"
        for index, path in sorted(files.get(photo_id, {}).items()):
            number += 1
            if layout == "chapters":
                entries.append((f"{folder}/{index:05d}{path.suffix}", path))
            else:
                entries.append((f"{number:05d}{path.suffix}", path))
    title = title or f"JM{album_id}"
    suffix = "" if layout == "flat" else f" ({layout})"
    return RunOutput(
        entries=entries,
        title=title,
        file_stem=f"jm-{album_id}" if layout == "flat" else f"jm-{album_id}-{layout}",
        download_name=f"{safe_component(title, max_length=150)} [JM{album_id}]{suffix}.zip",
    )
