"""Booru sites and their posts: ``GET /v1/booru/sites``, ``GET /v1/booru/{site}/posts``
(the download endpoint lives in downloads.py)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Request
from pydantic import BaseModel, Field

from app.api.deps import BooruSiteDep
from app.api.schemas import UPSTREAM, errors
from app.errors import Unprocessable
from app.sources.booru.base import BooruSite, CredentialsError, CredentialsKind, Family, Post
from app.sources.booru.politeness import wait_at_most
from app.sources.booru.pools import pool_site

router = APIRouter(tags=["booru"])

# An HTTP client waits this long at most for a site's Retry-After; longer is a 503 with Retry-After.
INTERACTIVE_WAIT_SECONDS = 10.0


class BooruSiteInfo(BaseModel):
    site: str
    name: str
    family: Family
    url: str
    credentials: CredentialsKind
    configured: bool
    credentials_set: bool
    page_limit: int


class BooruPost(BaseModel):
    id: int
    md5: str
    file_url: str | None = Field(description="null: no file jmbooru could fetch (restricted, deleted, or an "
                                 "address that is not a usable URL)")
    preview_url: str | None
    sample_url: str | None
    tags: list[str]
    rating: str
    score: int
    width: int
    height: int
    source: str
    created_at: str
    parent_id: int

    @classmethod
    def from_post(cls, post: Post) -> BooruPost:
        return cls(
            id=post.id, md5=post.md5, file_url=post.file_url or None, preview_url=post.preview_url or None,
            sample_url=post.sample_url or None, tags=post.tags, rating=post.rating, score=post.score,
            width=post.width, height=post.height, source=post.source, created_at=post.created_at,
            parent_id=post.parent_id,
        )


class BooruPostPage(BaseModel):
    site: str
    count: int | None
    page: int
    limit: int
    posts: list[BooruPost]


@router.get("/v1/booru/sites", response_model=list[BooruSiteInfo])
async def list_sites(request: Request) -> list[BooruSiteInfo]:
    """The booru sites this server knows, and whether each is ready to use."""
    return [
        BooruSiteInfo(site=s.info.site, name=s.info.name, family=s.info.family, url=s.info.url,
                      credentials=s.info.credentials, configured=_usable(s),
                      credentials_set=s.info.credentials_set, page_limit=s.page_limit)
        for s in request.app.state.booru.values()
    ]


def _usable(site: BooruSite) -> bool:
    """Whether the site can be used as set up: the credentials it needs are there and well-formed."""
    try:
        site.check_credentials()
    except CredentialsError:
        return False
    return True


@router.get("/v1/booru/{site}/posts", response_model=BooruPostPage, responses=errors(404, 422, *UPSTREAM))
async def search_posts(
    site: BooruSiteDep,
    tags: Annotated[str, Query(max_length=1000, description="space-separated tags, as on the site")] = "",
    page: Annotated[int, Query(ge=1, le=100_000, description="1-based page")] = 1,
    limit: Annotated[int, Query(ge=1, le=1000, description="posts per page, at most the site's page_limit")] = 40,
) -> BooruPostPage:
    """Search a booru site's posts, newest first (tags as plain strings, ratings normalised)."""
    if limit > site.page_limit:
        raise Unprocessable(f"Invalid request: limit: {site.info.name} pages hold at most {site.page_limit} posts.")
    site.check_page(page, limit)
    with wait_at_most(INTERACTIVE_WAIT_SECONDS):
        result = await site.search_posts(tags, page=page, limit=limit)
    return BooruPostPage(site=site.info.site, count=result.count, page=page, limit=limit,
                         posts=[BooruPost.from_post(p) for p in result.posts])


class BooruPool(BaseModel):
    id: int
    name: str = Field(description="the pool's name, underscores shown as spaces")
    post_count: int
    url: str = Field(description="the pool's page on the site")
    description: str = ""
    category: str | None = None


class BooruPoolList(BaseModel):
    pools: list[BooruPool]


@router.get("/v1/booru/{site}/pools", response_model=BooruPoolList, responses=errors(404, 422, *UPSTREAM))
async def search_pools(
    site: BooruSiteDep,
    q: Annotated[str, Query(max_length=200, description="words of the pool's name")] = "",
    page: Annotated[int, Query(ge=1, le=1000, description="1-based page")] = 1,
) -> BooruPoolList:
    """Find pools by name (Danbooru, yande.re, Konachan): each is a comic to download as one book."""
    pools = pool_site(site)
    with wait_at_most(INTERACTIVE_WAIT_SECONDS):
        found = await pools.search_pools(q, page)
    return BooruPoolList(pools=[BooruPool(**p.public()) for p in found])
