"""Page ``n`` of an album or a chapter: found, fetched once, rendered, answered, then cached.

An uncached page costs one upstream image request and one pass of Pillow work (decode, descramble,
scale, encode) before its answer; the files (the source as the CDN sent it, the rendered page) are
written after the answer is sent. Until they are on disk, the page and its source are kept in
memory, so a reader asking again (or for another width) meanwhile neither refetches nor re-renders.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
from collections.abc import Awaitable, Callable, Hashable
from typing import Any, TypeVar, cast

from app.errors import NotFound
from app.outputs.opds.pages import PageCache, RenderedPage
from app.sources.jm_stream import ChapterPages, JmPages, PageImage

T = TypeVar("T")
log = logging.getLogger("jmbooru.opds")

OUT_OF_RANGE = "There is no page {n} here: pages are numbered from 0 to {last} (OPDS-PSE counts from 0)."
# A page is saved once its answer went out; if no answer says so (the reader went away), after this.
SAVE_AFTER_SECONDS = 2.0

PageKey = tuple[str, int, int | None]  # chapter, index, width
SourceKey = tuple[str, int]  # chapter, index


@dataclasses.dataclass(frozen=True)
class FreshPage(RenderedPage):
    """A page just made: its bytes in memory; ``sent`` is set once an answer with them went out."""

    sent: asyncio.Event = dataclasses.field(default_factory=asyncio.Event)


class PageStream:
    def __init__(self, pages: JmPages, cache: PageCache) -> None:
        self.pages = pages
        self.cache = cache
        # A reader often asks for the same page twice at once (prefetch, then the tap): one fetch.
        self._in_flight: dict[Hashable, asyncio.Future[Any]] = {}
        # Made here and not yet on disk: answered from memory.
        self._fresh_pages: dict[PageKey, FreshPage] = {}
        self._fresh_sources: dict[SourceKey, PageImage] = {}
        self._saving_sources: set[SourceKey] = set()
        self._saves: set[asyncio.Task[None]] = set()

    async def album_page(self, album_id: str, number: int, max_width: int | None) -> RenderedPage:
        layout = await self.pages.layout(album_id)
        found = await self.pages.locate(layout, number)
        if found is None and self.pages.may_have_changed(layout):  # a chapter may have been added
            layout = await self.pages.layout(album_id, fresh=True)
            found = await self.pages.locate(layout, number)
        if found is None:
            raise NotFound(OUT_OF_RANGE.format(n=number, last=layout.page_count - 1))
        return await self._render(*found, max_width)

    async def chapter_page(self, album_id: str, photo_id: str, number: int, max_width: int | None) -> RenderedPage:
        layout = await self.pages.layout(album_id)
        if photo_id not in layout.chapter_ids and self.pages.may_have_changed(layout):
            layout = await self.pages.layout(album_id, fresh=True)
        if photo_id not in layout.chapter_ids:
            raise NotFound(f"Album {album_id} has no chapter {photo_id}: its chapters are "
                           f"{', '.join(layout.chapter_ids)}.")
        chapter = await self.pages.chapter(photo_id)
        if not 0 <= number < chapter.count:
            raise NotFound(OUT_OF_RANGE.format(n=number, last=chapter.count - 1))
        return await self._render(chapter, number, max_width)

    async def _render(self, chapter: ChapterPages, index: int, max_width: int | None) -> RenderedPage:
        key: PageKey = (chapter.photo_id, index, max_width)
        page = self._fresh_pages.get(key) or self.cache.find(*key)
        if page is not None:
            return page
        return await self._once(("page", *key), lambda: self._make(chapter, index, max_width))

    async def _make(self, chapter: ChapterPages, index: int, max_width: int | None) -> RenderedPage:
        photo_id = chapter.photo_id
        source = await self._once(("source", photo_id, index), lambda: self._source(chapter, index))
        page: FreshPage | None = None
        try:
            made = await self.cache.render(photo_id, index, source, max_width)
            page = FreshPage(made.path, made.media_type, made.body)
            self._fresh_pages[(photo_id, index, max_width)] = page
            return page
        finally:  # the source is saved even when it could not be rendered
            self._save_later(photo_id, index, max_width, page)

    async def _source(self, chapter: ChapterPages, index: int) -> PageImage:
        key: SourceKey = (chapter.photo_id, index)
        fresh = self._fresh_sources.get(key)
        if fresh is not None:
            return fresh
        strips, name = self.pages.describe(chapter, index)
        kept = self.cache.source_path(chapter.photo_id, index, strips)
        if kept.is_file():  # a stat, as PageCache.find: cheap enough for the loop
            return await self.cache.read_source(kept, strips, name)
        page = await self.pages.image(chapter, index)
        self._fresh_sources[key] = page
        return page

    def _save_later(self, photo_id: str, index: int, max_width: int | None, page: FreshPage | None) -> None:
        source_key: SourceKey = (photo_id, index)
        source = None
        if source_key in self._fresh_sources and source_key not in self._saving_sources:
            self._saving_sources.add(source_key)  # one request saves it, the first to get this far
            source = self._fresh_sources[source_key]
        if source is None and page is None:
            return
        if page is not None:  # the answer first (it sets ``sent``); if none goes out, save all the same
            asyncio.get_running_loop().call_later(SAVE_AFTER_SECONDS, page.sent.set)
        task = asyncio.ensure_future(self._save(source_key, source, (photo_id, index, max_width), page))
        self._saves.add(task)
        task.add_done_callback(self._saves.discard)

    async def _save(self, source_key: SourceKey, source: PageImage | None, page_key: PageKey,
                    page: FreshPage | None) -> None:
        try:
            if page is not None:
                await page.sent.wait()
            await self.cache.save(source_key[0], source_key[1], source, page)
        except Exception as exc:  # not cached: the page is made again when asked for again
            log.warning("an OPDS page of chapter %s could not be cached: %s", source_key[0], exc)
        finally:
            if source is not None:
                self._fresh_sources.pop(source_key, None)
                self._saving_sources.discard(source_key)
            if page is not None:
                self._fresh_pages.pop(page_key, None)

    async def aclose(self) -> None:
        """Save what is still in memory (at shutdown)."""
        for page in list(self._fresh_pages.values()):
            page.sent.set()
        if self._saves:
            await asyncio.gather(*self._saves, return_exceptions=True)

    async def _once(self, key: Hashable, make: Callable[[], Awaitable[T]]) -> T:
        """``make()`` once for concurrent callers with the same key; a caller that goes away does
        not cancel it for the others."""
        future = self._in_flight.get(key)
        if future is None:
            future = asyncio.ensure_future(make())
            self._in_flight[key] = future
            future.add_done_callback(lambda _done: self._in_flight.pop(key, None))
        return cast(T, await asyncio.shield(future))
