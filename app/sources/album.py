"""Download a JM album's pages into a folder through jmcomic: a plain function for jobs and the CLI.

jmcomic fetches the album and its chapters, descrambles the pages and names the files; its hooks
(which run in its worker threads) record what it wrote, so nothing is guessed from titles.
Page bodies go straight to disk (``app.sources.jm_pages``), so image threads cost round trips,
not memory.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import os
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import jmcomic
from jmcomic import DownloadControl, JmcomicText, JmDownloader

from app.blocking import BlockingPool
from app.config import Settings
from app.errors import AppError, DiskFull, NotFound, UpstreamError, UpstreamRateLimited
from app.sources.album_archive import unknown_chapters_problem
from app.sources.jm import build_option
from app.sources.jm_errors import translate_error
from app.sources.jm_pages import PageFetching, SessionPool, fetch, install_streaming_pages

log = logging.getLogger("jmbooru.jm")

COVER_FILE = "cover.jpg"
MAX_ATTEMPTS = 3  # one download and up to two more after JM said Retry-After


class Progress(Protocol):
    def update(self, *, done: int = 0, total: int | None = None, nbytes: int = 0, title: str | None = None,
               message: str | None = None) -> None:
        """Add ``done`` pages and ``nbytes`` bytes; set ``total``, ``title`` and what the download is
        doing (``message``). Called from any thread."""
        ...


class _NoProgress:
    def update(self, *, done: int = 0, total: int | None = None, nbytes: int = 0, title: str | None = None,
               message: str | None = None) -> None:
        pass


@dataclass
class DownloadedChapter:
    photo_id: str
    title: str
    pages: list[Path] = field(default_factory=list)  # in reading order
    sort: int = 0  # its place in the album (1, 2, ...), the library's book number


@dataclass
class DownloadedAlbum:
    album_id: str
    title: str = ""
    authors: list[str] = field(default_factory=list)
    tags: list[str] = field(default_factory=list)
    characters: list[str] = field(default_factory=list)
    description: str = ""
    chapters: list[DownloadedChapter] = field(default_factory=list)  # the ones downloaded, in album order
    chapter_count: int = 0  # chapters the album has
    cover: Path | None = None

    @property
    def page_count(self) -> int:
        return sum(len(c.pages) for c in self.chapters)


class _Recorder:
    """What jmcomic wrote, recorded from its hooks."""

    def __init__(self, album_id: str) -> None:
        self.lock = threading.Lock()
        self.album = DownloadedAlbum(album_id=album_id)
        self.files: dict[str, dict[int, Path]] = {}  # photo_id -> {page index: path}
        self.cover: concurrent.futures.Future[Path | None] | None = None
        self.expected = 0  # pages to download

    def result(self, cover: Path | None) -> DownloadedAlbum:
        album = self.album
        for chapter in album.chapters:
            chapter.pages = [path for _index, path in sorted(self.files.get(chapter.photo_id, {}).items())]
        album.cover = cover
        return album


def _downloader_class(recorder: _Recorder, progress: Progress, pool: BlockingPool, work_dir: Path,
                      wanted: tuple[str, ...] | None, pages: PageFetching,
                      known: Any | None = None) -> type[JmDownloader]:
    class RecordingDownloader(JmDownloader):
        def create_client(self) -> Any:
            client = super().create_client()
            install_streaming_pages(client, pages)
            if known is not None:  # the detail the look-up before this download fetched: not asked again
                fetch_detail = client.get_album_detail

                def get_album_detail(album_id: Any, *args: Any, **kwargs: Any) -> Any:
                    if str(album_id) == str(known.album_id):
                        return known
                    return fetch_detail(album_id, *args, **kwargs)

                client.get_album_detail = get_album_detail
            return client

        def before_album(self, album: Any) -> None:
            episodes = [(str(pid), str(title)) for pid, _sort, title in album.episode_list]
            sorts = {str(pid): int(sort) for pid, sort, _title in album.episode_list}
            problem = unknown_chapters_problem(str(album.album_id), wanted, episodes) if wanted else None
            if problem:
                raise NotFound(problem)
            super().before_album(album)
            with recorder.lock:
                info = recorder.album
                info.title = str(album.name)
                info.authors = [str(a) for a in album.authors]
                info.tags = [str(t) for t in album.tags]
                info.characters = [str(a) for a in album.actors]
                info.description = str(album.description or "")
                info.chapter_count = len(episodes)
                info.chapters = [DownloadedChapter(pid, title, sort=sorts.get(pid) or n)
                                 for n, (pid, title) in enumerate(episodes, start=1)
                                 if wanted is None or pid in wanted]
                # A subset's size is only known chapter by chapter (before_photo adds it).
                recorder.expected = int(album.page_count) if wanted is None else 0
                expected = recorder.expected
            progress.update(total=expected, title=str(album.name))
            # The cover comes alongside the pages, not before them: it costs no extra round trip.
            if recorder.cover is None:  # (a download resumed after a Retry-After has it already)
                recorder.cover = pool.submit(_fetch_cover, self.client, pages.sessions, str(album.album_id),
                                             work_dir / COVER_FILE)

        def do_filter(self, detail: Any) -> Any:
            if wanted is not None and detail.is_album():
                return [photo for photo in detail if str(photo.photo_id) in wanted]
            return detail

        def before_photo(self, photo: Any) -> None:
            super().before_photo(photo)
            if wanted is not None:
                with recorder.lock:
                    recorder.expected += len(photo)
                    expected = recorder.expected
                progress.update(total=expected)

        def after_image(self, image: Any, img_save_path: str) -> None:
            super().after_image(image, img_save_path)
            path = Path(img_save_path)
            with recorder.lock:
                chapter = recorder.files.setdefault(str(image.from_photo.photo_id), {})
                seen = int(image.index) in chapter  # kept from an earlier attempt (after a Retry-After)
                chapter[int(image.index)] = path
            if not seen:
                progress.update(done=1, nbytes=os.path.getsize(path))

    return RecordingDownloader


def _fetch_cover(client: Any, sessions: SessionPool, album_id: str, path: Path) -> Path | None:
    """The album's cover (the newest watch app shows it); optional: a failure is only logged.

    Fetched like the pages (a kept-alive connection of the session pool, the body straight to its
    file), not through jmcomic's cover call, which sets up a new curl session and connection while
    the chapter and its first pages are being asked for.
    """
    url = JmcomicText.get_album_cover_url(album_id, size="_3x4")  # as /v1/get/cover serves it
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fetch(client, sessions, url, lambda: open(path, "wb")).close()  # noqa: SIM115 - fetch closes it on failure
    except Exception as exc:
        log.info("cover not downloaded album_id=%s error=%s", album_id, type(exc).__name__)
        path.unlink(missing_ok=True)  # a body cut short is no cover
        return None
    return path if path.is_file() and path.stat().st_size > 0 else None


async def download_album(
    settings: Settings,
    album_id: str,
    work_dir: Path,
    *,
    pool: BlockingPool,
    pages: PageFetching,
    chapters: tuple[str, ...] | None = None,
    progress: Progress | None = None,
    album_detail: Any | None = None,
) -> DownloadedAlbum:
    """Download album ``album_id`` (only ``chapters``, when given) into ``work_dir``.

    ``album_detail``: jmcomic's detail of the album from a look-up moments ago (the API checks the
    album before it makes the job), used instead of asking JM for it again, unless it lacks one of
    ``chapters`` (a chapter newer than the look-up: then JM is asked).

    Runs jmcomic in ``pool``; cancelling the caller stops jmcomic's threads cooperatively and
    returns once they have finished writing. When JM says Retry-After (within
    ``JMBOORU_UPSTREAM_MAX_RETRY_AFTER_SECONDS``) it waits, says so, and goes on where it was.
    Failures are ``AppError`` sentences.
    """
    progress = progress or _NoProgress()
    if album_detail is not None and (str(album_detail.album_id) != album_id or not set(chapters or ()) <= {
            str(pid) for pid, _sort, _title in album_detail.episode_list}):
        album_detail = None
    option = build_option(settings, base_dir=work_dir / "pages", image_threads=settings.album_image_threads)
    control = DownloadControl()
    recorder = _Recorder(album_id)
    downloader = _downloader_class(recorder, progress, pool, work_dir, chapters, pages, album_detail)

    def download() -> None:
        jmcomic.download_album(album_id, option, downloader=downloader, control=control)

    for attempt in range(1, MAX_ATTEMPTS + 1):
        try:
            await _attempt(album_id, pool, download, control, recorder)
            break
        except UpstreamRateLimited as exc:
            wait = exc.retry_after
            if attempt == MAX_ATTEMPTS or wait is None or wait > settings.upstream_max_retry_after_seconds:
                raise
            resume = time.strftime("%H:%M:%S", time.localtime(time.time() + wait))
            progress.update(message=f"JM is rate-limiting this server; retrying at {resume}.")
            log.info("album rate limited album_id=%s wait=%.0f", album_id, wait)
            await asyncio.sleep(wait)
            progress.update(message="Downloading.")
    return recorder.result(await _settled(recorder.cover))


async def _attempt(album_id: str, pool: BlockingPool, download: Any, control: DownloadControl,
                   recorder: _Recorder) -> None:
    """One run of jmcomic over the album; pages already on disk from an earlier run are kept."""
    future = asyncio.ensure_future(pool.run(download))
    try:
        await asyncio.shield(future)
    except asyncio.CancelledError:
        control.cancel("download cancelled")
        await asyncio.gather(future, return_exceptions=True)
        # Read only now: jmcomic's thread may have started the cover after the cancel arrived, and
        # it must not write into the work folder once this returns.
        await _settled(recorder.cover)
        raise
    except jmcomic.PartialDownloadFailedException as exc:
        await _settled(recorder.cover)
        error = translate_error(exc)
        if isinstance(error, DiskFull | UpstreamRateLimited):
            raise error from exc
        done = sum(len(v) for v in recorder.files.values())
        raise UpstreamError(
            f"Some pages of album {album_id} could not be downloaded from JM after retries "
            f"({done} of {max(recorder.expected, done)} arrived): {error.detail}"
        ) from exc
    except jmcomic.DownloadCancelledException:
        await _settled(recorder.cover)
        raise asyncio.CancelledError() from None
    except AppError:
        await _settled(recorder.cover)
        raise
    except Exception as exc:
        await _settled(recorder.cover)
        raise translate_error(exc) from exc


async def _settled(future: concurrent.futures.Future[Path | None] | None) -> Path | None:
    """The cover, once its thread is done; a caller cancelled meanwhile still waits for the thread
    (it writes into the work folder, which the job removes right after), then unwinds."""
    if future is None:
        return None
    waiting = asyncio.wrap_future(future)
    try:
        return await asyncio.shield(waiting)
    except asyncio.CancelledError:
        await asyncio.wait([waiting])
        raise
    except Exception:
        return None
