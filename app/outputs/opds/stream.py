"""Page ``n`` of an album or a chapter: found, fetched once, rendered and cached."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Hashable
from typing import Any, TypeVar, cast

from app.errors import NotFound
from app.outputs.opds.pages import PageCache, RenderedPage
from app.sources.jm import AlbumInfo
from app.sources.jm_stream import ChapterPages, JmPages, PageImage

T = TypeVar("T")

OUT_OF_RANGE = "There is no page {n} here: pages are numbered from 0 to {last} (OPDS-PSE counts from 0)."


class PageStream:
    def __init__(self, pages: JmPages, cache: PageCache) -> None:
        self.pages = pages
        self.cache = cache
        # A reader often asks for the same page twice at once (prefetch, then the tap): one fetch.
        self._in_flight: dict[Hashable, asyncio.Future[Any]] = {}

    async def album_page(self, album: AlbumInfo, number: int, max_width: int | None) -> RenderedPage:
        found = await self.pages.locate(album, number)
        if found is None:
            raise NotFound(OUT_OF_RANGE.format(n=number, last=album.page_count - 1))
        return await self._render(*found, max_width)

    async def chapter_page(self, photo_id: str, number: int, max_width: int | None) -> RenderedPage:
        chapter = await self.pages.chapter(photo_id)
        if not 0 <= number < chapter.count:
            raise NotFound(OUT_OF_RANGE.format(n=number, last=chapter.count - 1))
        return await self._render(chapter, number, max_width)

    async def _render(self, chapter: ChapterPages, index: int, max_width: int | None) -> RenderedPage:
        cached = self.cache.find(chapter.photo_id, index, max_width)
        if cached is not None:
            return cached
        return await self._once(("page", chapter.photo_id, index, max_width),
                                lambda: self._make(chapter, index, max_width))

    async def _make(self, chapter: ChapterPages, index: int, max_width: int | None) -> RenderedPage:
        source, fetched = await self._once(("source", chapter.photo_id, index), lambda: self._source(chapter, index))
        # Only the request that fetched the page stores its source (the others see it on disk).
        return await self.cache.render(chapter.photo_id, index, source, max_width, keep_source=fetched)

    async def _source(self, chapter: ChapterPages, index: int) -> tuple[PageImage, bool]:
        kept = await self.cache.source(chapter.photo_id, index)
        if kept is not None:
            return kept, False
        return await self.pages.image(chapter, index), True

    async def _once(self, key: Hashable, make: Callable[[], Awaitable[T]]) -> T:
        """``make()`` once for concurrent callers with the same key; a caller that goes away does
        not cancel it for the others."""
        future = self._in_flight.get(key)
        if future is None:
            future = asyncio.ensure_future(make())
            self._in_flight[key] = future
            future.add_done_callback(lambda _done: self._in_flight.pop(key, None))
        return cast(T, await asyncio.shield(future))
