"""Single pages of a JM album, for page streaming: which chapter page is page ``n``, and its picture.

An album download fetches every page through jmcomic's downloader; a reader that streams pages
wants one page at a time. This module asks jmcomic for a chapter's page list (one API call per
chapter, cached) and fetches exactly one page image per call, descrambled by jmcomic's own rules
(``JmImageTool``: which pages are cut into strips, into how many, and how to put them back), so a
streamed page has the same pixels as the page in the album's archive.

A reader pages through an album for far longer than the API answers are cached (``cache_ttl_seconds``,
5 minutes by default), so the album's chapter order and the chapters' page lists are kept here for
an hour: an uncached page costs its image request and nothing else. A page past the end of an
album known for longer than the API cache keeps answers asks JM again first (a chapter may have been
added).
"""

from __future__ import annotations

import io
import time
from dataclasses import dataclass
from typing import Any

from jmcomic import JmImageTool
from PIL import Image

from app.cache import TtlCache
from app.errors import NotFound
from app.sources.jm import AlbumInfo, JmSource
from app.sources.jm_pages import SessionPool
from app.sources.jm_pages import fetch as fetch_page


@dataclass(frozen=True)
class ChapterPages:
    photo_id: str
    detail: Any  # jmcomic's JmPhotoDetail: its page list, image domain and scramble id

    @property
    def count(self) -> int:
        return len(self.detail)


@dataclass(frozen=True)
class AlbumLayout:
    album_id: str
    chapter_ids: tuple[str, ...]  # in reading order; a one-chapter album's chapter has the album's id
    page_count: int
    loaded_at: float  # time.monotonic()


def layout_of(album: AlbumInfo) -> AlbumLayout:
    ordered = sorted(album.chapters, key=lambda c: int(c["sort"]))
    return AlbumLayout(album.album_id, tuple(str(c["id"]) for c in ordered) or (album.album_id,),
                       album.page_count, time.monotonic())


@dataclass(frozen=True)
class PageImage:
    body: bytes  # as the CDN sent it
    strips: int  # 0: not scrambled; else the strip count jmcomic's rule gives for this page
    name: str  # the page's file name upstream (e.g. 00001.webp)


class _KeepDecoded(JmImageTool):  # type: ignore[misc]
    """jmcomic's descrambling, keeping the picture instead of saving it to a file: its
    ``decode_and_save`` calls ``cls.save_image`` with the finished picture."""

    @classmethod
    def save_image(cls, image: Image.Image, filepath: Any) -> None:
        filepath.append(image)


def descramble(picture: Image.Image, strips: int) -> Image.Image:
    """The page as the album download writes it (jmcomic's strip order)."""
    if strips == 0:
        return picture
    kept: list[Image.Image] = []
    _KeepDecoded.decode_and_save(strips, picture, kept)
    return kept[0]


def open_page(page: PageImage) -> Image.Image:
    picture = Image.open(io.BytesIO(page.body))
    picture.load()
    return descramble(picture, page.strips)


STREAM_METADATA_SECONDS = 3600.0


class JmPages:
    """Album layouts, page lists of chapters and single page images, through ``JmSource``'s client
    and pools."""

    def __init__(self, jm: JmSource) -> None:
        self.jm = jm
        keep = max(jm.settings.cache_ttl_seconds, STREAM_METADATA_SECONDS)
        self._chapters: TtlCache[ChapterPages] = TtlCache(keep, max_entries=512)
        self._layouts: TtlCache[AlbumLayout] = TtlCache(keep, max_entries=512)
        self._sessions = SessionPool(keep=16)

    def close(self) -> None:
        self._sessions.close()

    async def chapter(self, photo_id: str) -> ChapterPages:
        async def load() -> ChapterPages:
            client = await self.jm.client()
            detail = await self.jm._call(lambda: client.get_photo_detail(photo_id, False, True))
            if not getattr(detail, "page_arr", None) and not len(detail):
                raise NotFound(f"JM chapter {photo_id} has no pages.")
            return ChapterPages(photo_id, detail)

        return await self._chapters.get_or_load(photo_id, load)

    def remember(self, album: AlbumInfo) -> AlbumLayout:
        """Keep the layout of album details just read (e.g. for the album's feed)."""
        layout = layout_of(album)
        self._layouts.put(album.album_id, layout)
        return layout

    async def layout(self, album_id: str, *, fresh: bool = False) -> AlbumLayout:
        """The album's chapters in reading order: kept, or from the album details (JmSource's
        cache, else JM; ``fresh``: from JM)."""
        if fresh:
            return self.remember(await self.jm.album(album_id, fresh=True))

        async def load() -> AlbumLayout:
            return layout_of(await self.jm.album(album_id))

        return await self._layouts.get_or_load(album_id, load)

    def may_have_changed(self, layout: AlbumLayout) -> bool:
        """Whether the layout is older than the API cache keeps album details (JM may have more)."""
        return time.monotonic() - layout.loaded_at > self.jm.settings.cache_ttl_seconds

    async def locate(self, layout: AlbumLayout, number: int) -> tuple[ChapterPages, int] | None:
        """Which chapter holds page ``number`` (0-based, across chapters in reading order), and
        its index there; ``None`` past the last page. Chapter lists load only up to that page."""
        if number < 0:
            return None
        for photo_id in layout.chapter_ids:
            chapter = await self.chapter(photo_id)
            if number < chapter.count:
                return chapter, number
            number -= chapter.count
        return None

    def describe(self, chapter: ChapterPages, index: int) -> tuple[int, str]:
        """The strip count of page ``index`` (jmcomic's rule, no request) and its file name upstream."""
        detail = chapter.detail.getindex(index)
        return _strips(detail), str(detail.filename)

    async def image(self, chapter: ChapterPages, index: int) -> PageImage:
        """One upstream image request: page ``index`` (0-based) of the chapter."""
        detail = chapter.detail.getindex(index)
        client = await self.jm.client()
        url = str(detail.download_url)

        def fetch() -> bytes:
            # As album downloads fetch pages (jmcomic's headers and retries), on a kept-alive session.
            with fetch_page(client, self._sessions, url, io.BytesIO) as body:
                return bytes(body.getvalue())  # type: ignore[attr-defined]

        body = await self.jm._call(fetch, what="The JM image server", image=True)
        return PageImage(body, _strips(detail), str(detail.filename))


def _strips(detail: Any) -> int:
    # The same decision as jmcomic's downloader (JmOption.decide_download_image_decode).
    return 0 if detail.is_gif else int(JmImageTool.get_num_by_detail(detail))
