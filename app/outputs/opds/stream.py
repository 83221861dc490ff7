"""Page ``n`` of an album or a chapter: found, fetched once, rendered and cached."""

from __future__ import annotations

from app.errors import NotFound
from app.outputs.opds.pages import PageCache, RenderedPage
from app.sources.jm import AlbumInfo
from app.sources.jm_stream import ChapterPages, JmPages

OUT_OF_RANGE = "There is no page {n} here: pages are numbered from 0 to {last} (OPDS-PSE counts from 0)."


class PageStream:
    def __init__(self, pages: JmPages, cache: PageCache) -> None:
        self.pages = pages
        self.cache = cache

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
        source = await self.cache.source(chapter.photo_id, index)
        fetched = source is None
        if source is None:
            source = await self.pages.image(chapter, index)
        return await self.cache.render(chapter.photo_id, index, source, max_width, keep_source=fetched)
