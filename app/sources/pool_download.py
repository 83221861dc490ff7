"""Download a booru pool's pages: each post's original file, in pool order, md5-verified.

Pages are written as ``00001.<ext>``, ``00002.<ext>``, … with no gap; a post without a file
(banned, deleted, restricted, expunged, or on a host the site's settings do not allow) is skipped
and named, never fatal. The caller turns the pages into a CBZ, zip or PDF.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from app.archives import Book
from app.blocking import BlockingPool
from app.errors import AppError, UpstreamError
from app.files import temp_beside
from app.sources.booru.base import BooruSite, Post
from app.sources.booru.pools import Pool, PoolPage, pool_site
from app.sources.dataset import image_extension
from app.sources.selection import unavailable_reason


@dataclass
class Skipped:
    post_id: int
    reason: str

    def public(self) -> dict[str, object]:
        return {"post_id": self.post_id, "reason": self.reason}


@dataclass
class DownloadedPool:
    pool: Pool
    pages: list[tuple[str, Path]] = field(default_factory=list)  # (name in the archive, file), pool order
    posts: list[Post] = field(default_factory=list)  # the posts of those pages, same order
    skipped: list[Skipped] = field(default_factory=list)
    bytes: int = 0


async def _fetch(site: BooruSite, files: BlockingPool, post: Post, dest: Path) -> int:
    """The post's file into ``dest`` (renamed into place only when its md5 matches); two tries."""
    for _attempt in (1, 2):
        part = temp_beside(dest)
        try:
            got = await site.download_image(post.file_url, part, files)
            if got.md5 == post.md5:
                await files.run_to_end(os.replace, part, dest)
                return got.size
        finally:
            await files.run_to_end(part.unlink, missing_ok=True)
    raise UpstreamError(f"post {post.id}'s file did not match its md5 twice")


async def download_pool(site: BooruSite, pool_id: int, out: Path, *, files: BlockingPool, workers: int = 8,
                        on_progress: Callable[[int, int, int], None] | None = None) -> DownloadedPool:
    """All downloadable pages of the pool into ``out``; raises when not one page could be had.
    ``files``: where the pages are written and renamed (``ImagePools.files``)."""
    pools = pool_site(site)
    pool = await pools.pool(pool_id)
    listed: list[PoolPage] = await pools.pool_pages(pool)
    result = DownloadedPool(pool)
    wanted: list[Post] = []
    for page in listed:
        reason = page.reason or (unavailable_reason(site, page.post) if page.post else "") or ""
        if page.post is None or reason:
            result.skipped.append(Skipped(page.post_id, reason or "the post has no file"))
        else:
            wanted.append(page.post)
    total = len(wanted)
    slots = asyncio.Semaphore(max(1, workers))
    done = 0
    got: dict[int, tuple[Path, int]] = {}

    async def one(index: int, post: Post) -> None:
        nonlocal done
        dest = out / f".page-{index:05d}.{image_extension(post)}"
        async with slots:
            try:
                size = await _fetch(site, files, post, dest)
            except AppError as exc:
                result.skipped.append(Skipped(post.id, exc.detail.rstrip(".")))
                size = -1
        if size >= 0:
            got[index] = (dest, size)
            result.bytes += size
        done += 1
        if on_progress:
            on_progress(done, total, result.bytes)

    if on_progress:
        on_progress(0, total, 0)
    await asyncio.gather(*(one(i, p) for i, p in enumerate(wanted)))
    renames: list[tuple[Path, Path]] = []
    for index, post in enumerate(wanted):  # pool order, numbered without gaps
        if index in got:
            path, _size = got[index]
            final = out / f"{len(renames) + 1:05d}{path.suffix}"
            renames.append((path, final))
            result.pages.append((final.name, final))
            result.posts.append(post)
    await files.run_to_end(_rename_all, renames)  # one hop for the whole pool, not one per page
    order = {p.post_id: i for i, p in enumerate(listed)}
    result.skipped.sort(key=lambda s: order.get(s.post_id, len(order)))
    if not result.pages:
        raise UpstreamError(f"None of the {len(listed)} posts of pool {pool_id} ({pool.name}) has a file jmbooru "
                            "could download (banned, deleted, restricted or hosted elsewhere).")
    return result


def _rename_all(renames: list[tuple[Path, Path]]) -> None:
    for source, target in renames:
        os.replace(source, target)


async def pool_book(site: BooruSite, downloaded: DownloadedPool) -> Book:
    """ComicInfo for the pool: Series/Title the pool name, Number 1, people and tags by category."""
    missing = [t for p in downloaded.posts if not p.categories for t in p.tags]
    looked_up = await site.tag_categories(dict.fromkeys(missing)) if missing else {}
    by_category: dict[str, list[str]] = {"artist": [], "character": [], "general": []}
    for post in downloaded.posts:
        for tag in post.tags:
            category = post.categories.get(tag) or looked_up.get(tag) or "general"
            names = by_category.get(category)
            label = tag.replace("_", " ")
            if names is not None and label not in names:
                names.append(label)
    pool = downloaded.pool
    return Book(title=pool.name, series=pool.name, number="1", writers=by_category["artist"],
                characters=by_category["character"], tags=by_category["general"], summary=pool.description,
                web=pool.url)
