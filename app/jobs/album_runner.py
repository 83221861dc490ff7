"""Runs an album job: jmcomic downloads (and descrambles) every page into the job's folder."""

from __future__ import annotations

import asyncio
import os
import threading
from pathlib import Path
from typing import Any

import jmcomic
from jmcomic import DownloadControl, JmDownloader

from app.blocking import BlockingPool
from app.config import Settings
from app.errors import UpstreamError
from app.jobs.progress import ProgressTracker
from app.jobs.runner import RunContext, RunOutput
from app.sources.jm import build_option, translate_error
from app.storage import safe_component


class _Pages:
    """What jmcomic wrote, recorded from its hooks (which run in its worker threads)."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.title = ""
        self.chapters: list[tuple[str, str]] = []  # (photo_id, title) in reading order
        self.files: dict[str, list[tuple[int, Path]]] = {}  # photo_id -> [(page index, path)]


def _downloader_class(progress: ProgressTracker, pages: _Pages) -> type[JmDownloader]:
    class ReportingDownloader(JmDownloader):
        def before_album(self, album: Any) -> None:
            super().before_album(album)
            with pages.lock:
                pages.title = str(album.name)
                pages.chapters = [(str(pid), str(title)) for pid, _sort, title in album.episode_list]
            progress.update(total=int(album.page_count), title=str(album.name))

        def after_image(self, image: Any, img_save_path: str) -> None:
            super().after_image(image, img_save_path)
            path = Path(img_save_path)
            with pages.lock:
                pages.files.setdefault(str(image.from_photo.photo_id), []).append((int(image.index), path))
            progress.update(done=1, nbytes=os.path.getsize(path))

    return ReportingDownloader


class AlbumRunner:
    def __init__(self, settings: Settings, pool: BlockingPool) -> None:
        self.settings = settings
        self.pool = pool

    async def run(self, ctx: RunContext) -> RunOutput:
        album_id = str(ctx.job.params["album_id"])
        option = build_option(self.settings, base_dir=ctx.work_dir)
        control = DownloadControl()
        pages = _Pages()
        downloader = _downloader_class(ctx.progress, pages)

        def download() -> None:
            jmcomic.download_album(album_id, option, downloader=downloader, control=control)

        future = asyncio.ensure_future(self.pool.run(download))
        try:
            await asyncio.shield(future)
        except asyncio.CancelledError:
            # Stop jmcomic's threads cooperatively, and let them finish before the folder goes.
            control.cancel("job cancelled")
            await asyncio.gather(future, return_exceptions=True)
            raise
        except jmcomic.PartialDownloadFailedException as exc:
            done = sum(len(v) for v in pages.files.values())
            raise UpstreamError(
                f"Some pages of album {album_id} could not be downloaded from JM after retries "
                f"({done} of {ctx.progress.snapshot().total} arrived). Try again later."
            ) from exc
        except jmcomic.DownloadCancelledException:
            raise asyncio.CancelledError() from None
        except Exception as exc:
            raise translate_error(exc) from exc

        return self._output(album_id, pages)

    @staticmethod
    def _output(album_id: str, pages: _Pages) -> RunOutput:
        entries: list[tuple[str, Path]] = []
        chapters = pages.chapters or [(pid, pid) for pid in pages.files]
        width = max(3, len(str(len(chapters))))
        for number, (photo_id, chapter_title) in enumerate(chapters, start=1):
            folder = f"{number:0{width}d} {safe_component(chapter_title, fallback=photo_id, max_length=80)}"
            for index, path in sorted(pages.files.get(photo_id, [])):
                entries.append((f"{folder}/{index:05d}{path.suffix}", path))
        title = pages.title or f"JM{album_id}"
        return RunOutput(
            entries=entries,
            title=title,
            file_stem=f"jm-{album_id}",
            download_name=f"{safe_component(title, max_length=150)} [JM{album_id}].zip",
        )
