"""Moebooru sites (yande.re, konachan.com): ``post.json`` pages, categories from ``tag.json``.

Quirks: a bare list with no count (only ``post.xml`` counts); 1-based pages of at most 100; tags one
plain space-separated string; ``created_at`` a unix time; ``s`` means safe (general); deleted posts
have no ``file_url``; file names are ``<site> <id> <tags>.<ext>``, not the md5, so the md5 and the
extension come from their fields; ``tag.json?name=`` matches substrings, so the exact name is picked.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import functools
import logging
from collections.abc import AsyncGenerator, Iterable, Mapping
from typing import Any

from app.errors import UpstreamError
from app.sources.booru.base import Post, PostPage, normalise_rating
from app.sources.booru.http import is_cloudflare
from app.sources.booru.pools import Pool, PoolPage, missing_reason, parse_pool, unknown_pool
from app.sources.booru.site import HttpSite
from app.sources.booru.values import INT_LIMIT, as_bool, as_int, as_list, as_md5, as_str, split_tags

log = logging.getLogger("jmbooru.booru")

TAG_LOOKUPS_AT_ONCE = 4


def _timestamp(value: Any) -> str:
    seconds = as_int(value)
    if seconds <= 0 or seconds > INT_LIMIT // 1000:
        return as_str(value) if isinstance(value, str) else ""
    try:
        return dt.datetime.fromtimestamp(seconds, dt.UTC).isoformat()
    except (OverflowError, OSError, ValueError):
        return ""


class MoebooruSite(HttpSite):
    page_limit = 100

    def check_credentials(self) -> None:
        """Reading needs no account."""

    def check_page(self, page: int, limit: int) -> None:
        """Moebooru pages have no known depth limit."""

    # --- posts ---

    def parse_post(self, raw: Mapping[str, Any]) -> Post:
        url = functools.partial(self.url_field, raw)
        return Post(
            id=as_int(raw.get("id")),
            md5=as_md5(raw.get("md5")),
            file_url=url("file_url"),
            preview_url=url("preview_url"),
            sample_url=url("sample_url"),
            ext=as_str(raw.get("file_ext")).lower(),
            tags=split_tags(raw.get("tags"), unescape=False),
            rating=normalise_rating(as_str(raw.get("rating")), s_means="general"),
            score=as_int(raw.get("score")),
            width=as_int(raw.get("width")),
            height=as_int(raw.get("height")),
            source=as_str(raw.get("source")),
            parent_id=as_int(raw.get("parent_id")),
            created_at=_timestamp(raw.get("created_at")),
            status=as_str(raw.get("status")),
            has_children=as_bool(raw.get("has_children")),
        )

    async def page(self, tags: str, page: int, limit: int) -> tuple[list[Post], int]:
        params = {"tags": " ".join(tags.split()), "limit": max(1, min(self.page_limit, limit)), "page": max(1, page)}
        data = await self.api("/post.json", params)
        raws = [p for p in as_list(data) if isinstance(p, Mapping)] if not isinstance(data, dict) else []
        return [self.parse_post(p) for p in raws], len(raws)

    async def search_posts(self, tags: str, page: int = 1, limit: int = 40) -> PostPage:
        posts, _ = await self.page(tags, page, limit)
        return PostPage(count=None, posts=posts, offset=(page - 1) * limit)

    async def find_md5(self, md5: str) -> Post | None:
        posts, _ = await self.page(f"md5:{md5}", 1, 1)
        return next((p for p in posts if p.md5 == md5 and p.file_url), None)

    async def iter_posts(self, tags: str, max_posts: int | None = None) -> AsyncGenerator[Post, None]:
        limit = max(1, min(self.page_limit, self.config.page_size))
        seen: set[int] = set()
        number, yielded = 1, 0
        while True:
            posts, returned = await self.page(tags, number, limit)
            for post in posts:
                if post.id and post.id in seen:  # new uploads shift later pages down by a few posts
                    continue
                seen.add(post.id)
                yield post
                yielded += 1
                if max_posts is not None and yielded >= max_posts:
                    return
            if returned < limit:
                return
            number += 1

    # --- tags ---

    async def tag_categories(self, names: Iterable[str]) -> dict[str, str]:
        """One ``tag.json`` look-up per tag not seen before (the site has no batch look-up)."""
        wanted = list(names)
        missing = self.unknown(wanted)
        for start in range(0, len(missing), TAG_LOOKUPS_AT_ONCE):
            batch = missing[start : start + TAG_LOOKUPS_AT_ONCE]
            self.remember(dict(zip(batch, await asyncio.gather(*(self._category(n) for n in batch)), strict=True)))
        return self.known_categories(wanted)

    async def _category(self, name: str) -> str | None:
        data = await self.api("/tag.json", {"name": name, "limit": 0})
        for raw in as_list(data):  # substring matches: long_hair also finds very_long_hair
            if isinstance(raw, Mapping) and as_str(raw.get("name")) == name:
                return self.config.tag_types.get(as_int(raw.get("type")), "general")
        return None

    # --- pools ---

    async def _pool_doc(self, pool_id: int) -> Mapping[str, Any]:
        response = await self.http.get("/pool/show.json", {"id": pool_id})
        if response.status_code == 404:
            raise unknown_pool(self.title, pool_id)
        if response.status_code != 200:
            raise self.http.status_error(response)
        data = self.http.json(response, empty={})
        if not isinstance(data, Mapping) or as_int(data.get("id")) != pool_id:
            raise unknown_pool(self.title, pool_id)
        return data

    async def pool(self, pool_id: int) -> Pool:
        data = await self._pool_doc(pool_id)
        pool = parse_pool(data, f"{self.root}/pool/show/{pool_id}")
        pool.post_ids = [as_int(p.get("id")) for p in as_list(data.get("posts")) if isinstance(p, Mapping)]
        return pool

    async def pool_pages(self, pool: Pool) -> list[PoolPage]:
        """``/pool/show.json`` lists the posts in sequence order; a deleted one has no file."""
        data = await self._pool_doc(pool.id)
        pages = []
        for raw in as_list(data.get("posts")):
            if isinstance(raw, Mapping):
                post = self.parse_post(raw)
                pages.append(PoolPage(post.id, post, missing_reason(post)))
        return pages

    async def search_pools(self, query: str, page: int = 1) -> list[Pool]:
        data = await self.api("/pool.json", {"query": " ".join(query.split()), "page": page})
        return [parse_pool(raw, f"{self.root}/pool/show/{as_int(raw.get('id'))}")
                for raw in as_list(data) if isinstance(raw, Mapping)]

    # --- the API ---

    async def api(self, path: str, params: dict[str, Any]) -> Any:
        response = await self.http.get(path, params)
        if response.status_code == 200:
            data = self.http.json(response, empty=[])
            if isinstance(data, dict) and data.get("success") is False:
                raise UpstreamError(f"{self.title} refused the search; try other tags.")
            return data
        if response.status_code in (401, 403) and not is_cloudflare(response):
            raise UpstreamError(
                f"{self.title} refused to answer (HTTP {response.status_code}); reading needs no account, so the "
                f"site may be blocking this network: try again later or through JMBOORU_PROXY."
            )
        raise self.http.status_error(response)
