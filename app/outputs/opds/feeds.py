"""Acquisition feeds: JM lists (search, rankings, favourites), an album's chapters, ready archives.

Each album entry needs the album's details (authors, tags, page count), one cached lookup each, so
a feed page holds ``PER_PAGE`` albums rather than JM's 80, and the lookups run side by side.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from urllib.parse import quote, urlencode

from app.errors import NotFound
from app.jobs.models import Job
from app.outputs.opds.atom import ACQUISITION, Entry, Feed
from app.outputs.opds.catalog import ReadyArchive, album_entry, archive_entry, chapter_entry, root_feed
from app.sources.jm import AlbumInfo, JmSource
from app.sources.jm_account import JmAccount
from app.sources.jm_stream import JmPages

PER_PAGE = 20
JM_PAGE_SIZE = 80  # albums on one page of JM's search and category lists
MAX_SEARCH_PAGE = 100  # JM search pages beyond this are refused by /v1/search too


def root(with_favorites: bool) -> str:
    return root_feed(with_favorites).render()


async def _albums(jm: JmSource, ids: list[str]) -> list[AlbumInfo]:
    """Details of each listed album, in list order; albums JM will not describe (login-only,
    removed) are left out rather than failing the page."""

    async def one(album_id: str) -> AlbumInfo | None:
        try:
            return await jm.album(album_id)
        except NotFound:
            return None

    found = await asyncio.gather(*(one(album_id) for album_id in ids))
    return [album for album in found if album is not None]


def _href(path: str, page: int, **query: str) -> str:
    params = {**query, "page": str(page)} if page > 1 else dict(query)
    return f"{path}?{urlencode(params)}" if params else path


async def _jm_list_page(load_page: Callable[[int], Awaitable[list[str]]], page: int) -> tuple[list[str], bool]:
    """The album ids of feed page ``page`` (PER_PAGE of them) cut from JM's 80-album pages, and
    whether another feed page follows (JM's next page is asked for only when this one is used up)."""
    first = (page - 1) * PER_PAGE
    jm_page = first // JM_PAGE_SIZE + 1
    items = await load_page(jm_page)
    start = first % JM_PAGE_SIZE
    ids = items[start:start + PER_PAGE]
    if start + PER_PAGE < len(items):
        return ids, True
    if len(items) < JM_PAGE_SIZE:
        return ids, False
    following = await load_page(jm_page + 1)
    return ids, bool(following)


async def _list_feed(jm: JmSource, cbz_type: str, feed_id: str, title: str, path: str, page: int,
                     ids: list[str], more: bool, **query: str) -> str:
    albums = await _albums(jm, ids)
    feed = Feed(id=feed_id, title=title, self_href=_href(path, page, **query), kind=ACQUISITION,
                entries=[album_entry(album, cbz_type) for album in albums],
                next_href=_href(path, page + 1, **query) if more else None)
    return feed.render()


async def search(jm: JmSource, cbz_type: str, query: str, page: int) -> str:
    async def load(jm_page: int) -> list[str]:
        if jm_page > MAX_SEARCH_PAGE:
            return []
        return [item["album_id"] for item in await jm.search(query, jm_page)]

    ids, more = await _jm_list_page(load, page)
    return await _list_feed(jm, cbz_type, f"urn:jmbooru:opds:search:{quote(query, safe='')}", f"JM search: {query}",
                            "/opds/jm/search", page, ids, more, q=query)


async def ranking(jm: JmSource, cbz_type: str, period: str, page: int) -> str:
    async def load(jm_page: int) -> list[str]:
        return [item["aid"] for item in await jm.ranking(period, jm_page)]

    ids, more = await _jm_list_page(load, page)
    titles = {"day": "today", "week": "this week", "month": "this month", "all": "all time"}
    return await _list_feed(jm, cbz_type, f"urn:jmbooru:opds:rank:{period}", f"JM ranking: {titles[period]}",
                            f"/opds/jm/rank/{period}", page, ids, more)


async def favorites(jm: JmSource, account: JmAccount, cbz_type: str, page: int) -> str:
    found = await account.favorites(page, "0")
    ids = [album.album_id for album in found.albums]
    return await _list_feed(jm, cbz_type, "urn:jmbooru:opds:favorites", "JM favourites", "/opds/jm/favorites",
                            page, ids, page < found.page_count)


async def album(info: AlbumInfo, pages: JmPages, cbz_type: str) -> str:
    entries: list[Entry] = [album_entry(info, cbz_type)]
    chapters = sorted(info.chapters, key=lambda c: int(c["sort"]))
    if len(chapters) > 1:
        details = await asyncio.gather(*(pages.chapter(str(c["id"])) for c in chapters))
        entries += [chapter_entry(info, str(c["id"]), str(c["title"]), position, detail.count, cbz_type)
                    for position, (c, detail) in enumerate(zip(chapters, details, strict=True), start=1)]
    return Feed(id=f"urn:jmbooru:opds:album:{info.album_id}", title=info.title,
                self_href=f"/opds/jm/album/{info.album_id}", kind=ACQUISITION, entries=entries).render()


def archives(ready: list[Job], cbz_type: str, page: int) -> str:
    albums = [job for job in ready if job.kind == "album" and job.file_name]
    albums.sort(key=lambda job: job.finished_at or 0.0, reverse=True)
    shown = albums[(page - 1) * PER_PAGE: page * PER_PAGE]
    entries = [archive_entry(ReadyArchive(job.job_id, str(job.params.get("album_id", "")), job.title,
                                          str(job.params.get("format", "zip")), job.finished_at), cbz_type)
               for job in shown]
    more = len(albums) > page * PER_PAGE
    return Feed(id="urn:jmbooru:opds:archives", title="Archives on this server", self_href=_href("/opds/archives", page),
                kind=ACQUISITION, entries=entries,
                next_href=_href("/opds/archives", page + 1) if more else None).render()
