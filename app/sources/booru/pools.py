"""Booru pools: an ordered set of posts on a Danbooru or Moebooru site, read as one book.

``pool`` looks a pool up (404 with a sentence when it does not exist), ``pool_posts`` gives its
posts in **pool order** (never id order) with the ones that have no file named, ``search_pools``
finds pools by name. Gelbooru-family sites have no pool API: ``pool_site`` says so.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

from app.errors import NotFound, Unprocessable
from app.sources.booru.base import BooruSite, Post
from app.sources.booru.values import as_int, as_list, as_str


@dataclass
class Pool:
    id: int
    name: str  # underscores shown as spaces
    post_count: int
    url: str  # the pool's page on the site
    description: str = ""
    category: str = ""
    post_ids: list[int] = field(default_factory=list)  # page order, where the site lists them

    def public(self) -> dict[str, Any]:
        return {"id": self.id, "name": self.name, "post_count": self.post_count, "url": self.url,
                "description": self.description, "category": self.category or None}


@dataclass
class PoolPage:
    """One page of the pool: the post (None when the site no longer returns it) and why it is missing."""

    post_id: int
    post: Post | None
    reason: str = ""


@runtime_checkable
class PoolSite(Protocol):
    async def pool(self, pool_id: int) -> Pool: ...
    async def pool_pages(self, pool: Pool) -> list[PoolPage]: ...
    async def search_pools(self, query: str, page: int = 1) -> list[Pool]: ...


POOL_SITES_SENTENCE = "pools work on danbooru, yandere and konachan"


def pool_site(site: BooruSite, sites: Mapping[str, BooruSite] | None = None) -> PoolSite:
    """The site as a pool site, or 422 naming the sites that have pools."""
    if isinstance(site, PoolSite):
        return site
    having = [name for name, s in (sites or {}).items() if isinstance(s, PoolSite)] or ["danbooru", "yandere",
                                                                                          "konachan"]
    names = ", ".join(having[:-1]) + f" and {having[-1]}" if len(having) > 1 else having[0]
    raise Unprocessable(f"{site.info.site} has no pools; pools work on {names}.")


def pool_name(raw: Any) -> str:
    return " ".join(as_str(raw).replace("_", " ").split())


def unknown_pool(title: str, pool_id: int) -> NotFound:
    return NotFound(f"{title} has no pool {pool_id}; check the number in the pool's address.")


def parse_pool(raw: Mapping[str, Any], url: str) -> Pool:
    post_ids = [as_int(i) for i in as_list(raw.get("post_ids"))]
    return Pool(id=as_int(raw.get("id")), name=pool_name(raw.get("name")),
                post_count=as_int(raw.get("post_count")) or len(post_ids), url=url,
                description=as_str(raw.get("description")), category=as_str(raw.get("category")),
                post_ids=[i for i in post_ids if i > 0])


def missing_reason(post: Post | None) -> str:
    if post is None:
        return "the site no longer returns this post (expunged or hidden)"
    if post.status == "deleted":
        return "the post was deleted"
    if not post.file_url or not post.md5:
        return "the post has no file (banned, or restricted for this account)"
    return ""
