"""What a check finds: for each kind, the new items and the ordinary job specs that download them.

A check always asks the upstream (never a cache). It returns a plan; the service submits the jobs
and records the new ``seen`` state, so a check that fails half-way records nothing.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Mapping
from contextlib import aclosing
from dataclasses import dataclass, field
from typing import Any

from app.jobs.kinds.album import AlbumSpec
from app.jobs.kinds.booru import BooruSpec
from app.jobs.specs import JobSpec
from app.sources.booru.base import BooruSite, Post
from app.sources.captions import CaptionOptions, PostFilters
from app.sources.jm import AlbumInfo, JmSource
from app.sources.jm_account import JmAccount
from app.sources.selection import unavailable_reason
from app.subscriptions.models import Subscription

# Posts looked at per booru check beyond max_images (the rest of a huge backlog is marked seen unread).
MAX_SCAN_FACTOR = 10


@dataclass
class PlannedJob:
    spec: JobSpec
    info: dict[str, Any]  # what the check answer says of the job besides its id (album_id, chapters, skipped)


@dataclass
class CheckPlan:
    seen: dict[str, Any]
    new: list[dict[str, Any]] = field(default_factory=list)
    jobs: list[PlannedJob] = field(default_factory=list)


@dataclass
class CheckSources:
    jm: JmSource
    account: JmAccount
    booru: Mapping[str, BooruSite]
    site_limit: Callable[[str], asyncio.Semaphore]  # politeness: concurrent checks per upstream


def _chapter_ids(info: AlbumInfo) -> list[tuple[str, str]]:
    """(chapter id, title) in reading order; a one-chapter album is its own chapter, as in jmcomic."""
    if info.chapters:
        ordered = sorted(info.chapters, key=lambda c: int(c.get("sort") or 0))
        return [(str(c["id"]), str(c.get("title") or "")) for c in ordered]
    return [(info.album_id, info.title)]


def _album_job(sub: Subscription, info: AlbumInfo, new: list[str]) -> PlannedJob:
    every = [cid for cid, _ in _chapter_ids(info)]
    whole = set(new) == set(every)
    library = sub.dest == "library"
    spec = AlbumSpec(album_id=info.album_id, format="cbz" if library else sub.format or "zip",
                     layout="flat" if library else sub.layout or "flat", chapters=None if whole else tuple(new),
                     dest="library" if library else "archive")
    return PlannedJob(spec, {"album_id": info.album_id, "chapters": new})


def _new_items(info: AlbumInfo, new: list[str]) -> list[dict[str, Any]]:
    titles = dict(_chapter_ids(info))
    return [{"album_id": info.album_id, "chapter_id": cid, "title": titles.get(cid) or info.title} for cid in new]


async def check_jm_album(sub: Subscription, sources: CheckSources) -> CheckPlan:
    album_id = str(sub.target["album_id"])
    async with sources.site_limit("jm"):
        info = await sources.jm.album(album_id, fresh=True)
    chapters = [cid for cid, _ in _chapter_ids(info)]
    first = sub.seen is None
    seen_before: list[str] = [] if first else list((sub.seen or {}).get("chapters", []))
    if first and sub.seed == "latest":
        new: list[str] = []
    else:
        new = [cid for cid in chapters if cid not in seen_before]
    plan = CheckPlan(seen={"chapters": chapters + [c for c in seen_before if c not in chapters]})
    if new:
        plan.new = _new_items(info, new)
        plan.jobs.append(_album_job(sub, info, new))
    return plan


async def _all_favourites(sources: CheckSources, folder: str) -> list[tuple[str, str]]:
    """(album id, latest chapter id or "") of every favourite in the folder, newest first."""
    async with sources.site_limit("jm"):
        first = await sources.account.favorites(1, folder)
        albums = list(first.albums)
        for page in range(2, first.page_count + 1):
            albums += (await sources.account.favorites(page, folder)).albums
    return [(a.album_id, a.latest_chapter_id) for a in albums]


async def check_jm_favorites(sub: Subscription, sources: CheckSources) -> CheckPlan:
    folder = str(sub.target.get("folder") or "0")
    favourites = await _all_favourites(sources, folder)
    first = sub.seen is None
    known: dict[str, list[str]] = {} if first else dict((sub.seen or {}).get("albums", {}))

    async def detail(album_id: str) -> AlbumInfo:
        async with sources.site_limit("jm"):
            return await sources.jm.album(album_id, fresh=True)

    # Details only where something may be new: a new favourite, or a latest chapter not seen yet.
    to_read = [aid for aid, latest in favourites
               if aid not in known or (latest and latest not in known[aid])]
    infos = dict(zip(to_read, await asyncio.gather(*(detail(a) for a in to_read)), strict=True))
    plan = CheckPlan(seen={"albums": {}})
    for album_id, _latest in favourites:
        info = infos.get(album_id)
        if info is None:
            plan.seen["albums"][album_id] = known[album_id]
            continue
        chapters = [cid for cid, _ in _chapter_ids(info)]
        before = known.get(album_id)
        plan.seen["albums"][album_id] = chapters + [c for c in (before or []) if c not in chapters]
        if first and sub.seed == "latest":
            continue
        new = chapters if before is None else [c for c in chapters if c not in before]
        if new:
            plan.new += _new_items(info, new)
            plan.jobs.append(_album_job(sub, info, new))
    return plan


async def check_booru_query(sub: Subscription, sources: CheckSources, max_images: int) -> CheckPlan:
    site = sources.booru[str(sub.target["site"])]
    tags = " ".join(str(sub.target["tags"]).split())
    filters = PostFilters.model_validate(sub.filters or {})
    first = sub.seen is None
    high_water = 0 if first else int((sub.seen or {}).get("high_water", 0))
    async with sources.site_limit(site.info.site):
        if first and sub.seed == "latest":
            page = await site.search_posts(tags, 1, 1)
            top = max((p.id for p in page.posts), default=0)
            return CheckPlan(seen={"high_water": top})
        query = tags if first else f"{tags} id:>{high_water}"
        found: list[Post] = []
        scan = max_images if first else max_images * MAX_SCAN_FACTOR
        async with aclosing(site.iter_posts(query, max_posts=scan)) as posts:
            async for post in posts:
                found.append(post)
    plan = CheckPlan(seen={"high_water": max([high_water, *(p.id for p in found)])})
    wanted = [p for p in found if p.id > high_water and filters.matches(p)
              and unavailable_reason(site, p) is None]
    chosen = sorted(wanted, key=lambda p: -p.id)[:max_images]
    if not chosen:
        return plan
    low, high = min(p.id for p in chosen), max(p.id for p in chosen)
    # Exactly these posts: the same tags and filters, bounded by the ids found (ids never change).
    spec = BooruSpec(site=site.info.site, tags=f"{tags} id:>{low - 1} id:<{high + 1}", max_images=len(chosen),
                     caption=CaptionOptions.model_validate(sub.caption or {}), filters=filters)
    plan.new = [{"post_id": p.id, "md5": p.md5} for p in chosen]
    plan.jobs.append(PlannedJob(spec, {"skipped": len(wanted) - len(chosen)}))
    return plan


Check = Callable[[Subscription, CheckSources], Awaitable[CheckPlan]]
