"""JM comics through the real ``jmcomic`` library (its sync API client, run in our own pool)."""

from __future__ import annotations

import asyncio
import copy
import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from jmcomic import JmcomicText, JmMagicConstants, JmModuleConfig, JmOption

from app.blocking import BlockingPool
from app.cache import TtlCache
from app.config import Settings, mask_password
from app.errors import AppError, NotFound, UpstreamError
from app.sources.jm_counting import CLIENT_KEY
from app.sources.jm_errors import set_proxy, translate_error

log = logging.getLogger("jmbooru.jm")

RANK_PERIODS = ("day", "week", "month", "all")


def apply_module_settings(settings: Settings) -> None:
    """Point jmcomic's module globals at the configured domains before the first client exists."""
    JmModuleConfig.PROT = f"{settings.jm_scheme}://"
    JmModuleConfig.FLAG_ENABLE_JM_LOG = log.isEnabledFor(logging.DEBUG)
    if settings.jm_api_domains:
        JmModuleConfig.DOMAIN_API_LIST = list(settings.jm_api_domains)
        JmModuleConfig.DOMAIN_HTML_LIST = list(settings.jm_api_domains)
        # Configured domains win: no fetching of remote domain lists.
        JmModuleConfig.FLAG_API_CLIENT_AUTO_UPDATE_DOMAIN = False
        JmModuleConfig.DOMAIN_API_UPDATED_LIST = []
    if settings.jm_image_domains:
        JmModuleConfig.DOMAIN_IMAGE_LIST = list(settings.jm_image_domains)
    if settings.proxy:
        JmModuleConfig.DEFAULT_PROXIES = _proxies(settings.proxy)
    elif _is_local(settings.jm_api_domains + settings.jm_image_domains):
        # jmcomic reads proxies from the environment at import and ignores NO_PROXY.
        JmModuleConfig.DEFAULT_PROXIES = {}
    JmModuleConfig.APP_COOKIES = None
    set_proxy(mask_password(settings.proxy) if settings.proxy else "")


def _proxies(url: str) -> dict[str, str]:
    return {"http": url, "https": url}


def _is_local(domains: list[str]) -> bool:
    return bool(domains) and all(d.split(":")[0] in ("127.0.0.1", "localhost", "[::1]") for d in domains)


def build_option(settings: Settings, base_dir: Path | None = None, *, image_threads: int | None = None) -> JmOption:
    meta: dict[str, Any] = {"impersonate": "chrome", "headers": None, "timeout": settings.jm_timeout_seconds}
    if settings.proxy:  # JMBOORU_PROXY: one proxy for every upstream, JM included
        meta["proxies"] = _proxies(settings.proxy)
    elif _is_local(settings.jm_api_domains + settings.jm_image_domains):
        # An empty dict lets libcurl fall back to http_proxy from the environment; "all": "" does not.
        meta["proxies"] = {"all": ""}
    return JmOption.construct(
        {
            "log": JmModuleConfig.FLAG_ENABLE_JM_LOG,
            "dir_rule": {"rule": "Bd_Pid", "base_dir": str(base_dir or settings.data_path)},
            "download": {
                "cache": True,
                "image": {"decode": True, "suffix": None},
                "threading": {"image": image_threads or settings.download_workers, "photo": 1},
            },
            "client": {
                "impl": CLIENT_KEY,  # jmcomic's API client, with every call counted
                "retry_times": settings.jm_retry_times,
                "domain": list(settings.jm_api_domains),
                "postman": {"type": "curl_cffi", "meta_data": meta},
            },
        }
    )


@dataclass(frozen=True)
class AlbumInfo:
    album_id: str
    title: str
    tags: list[str]
    authors: list[str]
    works: list[str]
    actors: list[str]
    views: Any
    likes: Any
    comment_count: int
    page_count: int
    pub_date: str
    description: str
    chapters: list[dict[str, Any]]


def _comment(comment: Any) -> dict[str, Any]:
    """A jmcomic ``JmAlbumComment`` in the seed's shape; jmcomic already turned the HTML into
    plain text (``<br>`` became a newline)."""

    def text(value: Any) -> str | None:
        return None if value is None else str(value)

    return {
        "comment_id": text(comment.comment_id),
        "album_id": text(comment.album_id),
        "user_id": text(comment.user_id),
        "parent_comment_id": text(comment.parent_comment_id),
        "content": str(comment.content or ""),
        "username": text(comment.username),
        "nickname": text(comment.nickname),
        "is_spoiler": bool(comment.is_spoiler),
        "created_at": text(comment.created_at),
        "likes": comment.likes,
        "replies": [_comment(reply) for reply in comment.replies],
    }


class JmSource:
    """The JM read API and album downloads; every jmcomic call runs in ``pool``."""

    def __init__(self, settings: Settings, pool: BlockingPool) -> None:
        self.settings = settings
        self.pool = pool
        self._client: Any = None
        self._client_lock = asyncio.Lock()
        # One bound per upstream host family: a slow API cannot take every thread from covers.
        images = max(1, int(pool.max_workers * settings.jm_image_share))
        self._api_slots = asyncio.Semaphore(max(1, pool.max_workers - images))
        self._image_slots = asyncio.Semaphore(images)
        ttl = settings.cache_ttl_seconds
        self._lists: TtlCache[list[dict[str, str]]] = TtlCache(ttl)
        self._albums: TtlCache[AlbumInfo] = TtlCache(ttl)
        # jmcomic's own album detail behind each cached AlbumInfo, for the download that usually
        # follows the look-up (the POST checks the album first): it need not ask JM again.
        self._details: TtlCache[Any] = TtlCache(ttl)
        self._covers: TtlCache[bytes] = TtlCache(ttl, max_entries=256)
        self._comments: TtlCache[dict[str, Any]] = TtlCache(ttl, max_entries=512)
        self._chapter_albums: TtlCache[str] = TtlCache(ttl, max_entries=1024)

    async def client(self) -> Any:
        if self._client is None:
            async with self._client_lock:
                if self._client is None:
                    # Creating a client does network I/O (cookies from /setting): never on the loop.
                    self._client = await self._call(lambda: build_option(self.settings).new_jm_client())
        return self._client

    async def warm_up(self) -> None:
        """Create the client (cookies from /setting) at start-up, off every request's path."""
        try:
            await self.client()
        except AppError as exc:
            log.warning("jm client not ready at start-up (the first request retries): %s", exc.detail)

    async def _call(self, fn: Callable[[], Any], what: str = "JM", *, image: bool = False) -> Any:
        # Each HTTP call and retry inside is counted by the client itself (app.sources.jm_counting).
        async with self._image_slots if image else self._api_slots:
            try:
                return await self.pool.run(fn)
            except Exception as exc:
                raise translate_error(exc, what=what) from exc

    async def ranking(self, period: str, page: int) -> list[dict[str, str]]:
        async def load() -> list[dict[str, str]]:
            client = await self.client()
            times = {"day": JmMagicConstants.TIME_TODAY, "week": JmMagicConstants.TIME_WEEK,
                     "month": JmMagicConstants.TIME_MONTH, "all": JmMagicConstants.TIME_ALL}
            result = await self._call(lambda: client.categories_filter(
                page, times[period], JmMagicConstants.CATEGORY_ALL, JmMagicConstants.ORDER_BY_VIEW))
            return [{"aid": str(aid), "title": str(title)} for aid, title in result.iter_id_title()]

        return await self._lists.get_or_load(("rank", period, page), load)

    async def search(self, query: str, page: int) -> list[dict[str, str]]:
        async def load() -> list[dict[str, str]]:
            client = await self.client()
            result = await self._call(lambda: client.search_site(search_query=query, page=page))
            if result.is_single_album:
                album = result.single_album
                return [{"album_id": str(album.album_id), "title": str(album.name)}]
            return [{"album_id": str(aid), "title": str(title)} for aid, title in result.iter_id_title()]

        return await self._lists.get_or_load(("search", query, page), load)

    async def album(self, album_id: str, *, fresh: bool = False) -> AlbumInfo:
        """The album's details; ``fresh`` asks JM even when the cache holds them (and refreshes it)."""

        async def load() -> AlbumInfo:
            client = await self.client()
            detail = await self._call(lambda: client.get_album_detail(album_id))
            self._details.put(album_id, detail)
            return AlbumInfo(
                album_id=str(detail.album_id),
                title=str(detail.name),
                tags=[str(t) for t in detail.tags],
                authors=[str(a) for a in detail.authors],
                works=[str(w) for w in detail.works],
                actors=[str(a) for a in detail.actors],
                views=detail.views,
                likes=detail.likes,
                comment_count=int(detail.comment_count),
                page_count=int(detail.page_count),
                pub_date=str(detail.pub_date),
                description=str(detail.description),
                chapters=[
                    {"id": str(pid), "title": str(title), "sort": int(sort)}
                    for pid, sort, title in detail.episode_list
                ],
            )

        if fresh:
            info = await load()
            self._albums.put(album_id, info)
            return info
        return await self._albums.get_or_load(album_id, load)

    def recent_album_detail(self, album_id: str) -> Any | None:
        """jmcomic's detail of the album as the last look-up fetched it (within JMBOORU_CACHE_TTL_SECONDS,
        like the AlbumInfo it came with), as a copy of its own for one download; None when there is none."""
        detail = self._details.peek(album_id)
        return copy.deepcopy(detail) if detail is not None else None

    async def chapter_album(self, photo_id: str) -> str:
        """The id of the album a chapter (JM's "photo") belongs to; a one-chapter album shares its id."""

        async def load() -> str:
            client = await self.client()
            photo = await self._call(lambda: client.get_photo_detail(
                photo_id, fetch_album=False, fetch_scramble_id=False), what="JM chapter")
            return str(photo.album_id)

        return await self._chapter_albums.get_or_load(photo_id, load)

    async def cover(self, album_id: str) -> bytes:
        async def load() -> bytes:
            client = await self.client()

            def fetch() -> bytes:
                url = JmcomicText.get_album_cover_url(album_id, size="_3x4")
                return bytes(client.get_jm_image(url).content)

            try:
                return bytes(await self._call(fetch, what="The JM image server", image=True))
            except UpstreamError as exc:
                # A missing cover comes back as a 404 image response: tell it apart from an outage.
                if await self._cover_missing(album_id):
                    raise NotFound("This JM album does not exist or has no cover.") from exc
                raise

        return await self._covers.get_or_load(album_id, load)

    async def comments(self, album_id: str, page: int) -> dict[str, Any]:
        """One page of an album's comments (10 top-level comments a page, replies nested)."""

        async def load() -> dict[str, Any]:
            client = await self.client()
            result = await self._call(lambda: client.album_pagination(album_id, page=page))
            return {
                "aid": album_id,
                "page": page,
                "page_size": int(result.page_size),
                "total": result.total,
                "page_count": result.page_count,
                "comment_count": int(result.comment_count),
                "comments": [_comment(c) for c in result.content],
            }

        return await self._comments.get_or_load((album_id, page), load)

    async def _cover_missing(self, album_id: str) -> bool:
        try:
            await self.album(album_id)
        except NotFound:
            return True
        except AppError:
            return False
        return False
