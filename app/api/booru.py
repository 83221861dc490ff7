"""Booru search: ``GET /v1/booru/{site}/posts`` (the download endpoint lives in downloads.py)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Request
from pydantic import BaseModel

from app.api.schemas import UPSTREAM, errors
from app.errors import NotFound, Unprocessable, UpstreamUnavailable
from app.sources.gelbooru import DEPTH_LIMIT, GelbooruClient, Post

router = APIRouter(tags=["booru"])

SUPPORTED_SITES = ("gelbooru",)


class BooruPost(BaseModel):
    id: int
    md5: str
    file_url: str
    preview_url: str
    sample_url: str
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
            id=post.id, md5=post.md5, file_url=post.file_url, preview_url=post.preview_url,
            sample_url=post.sample_url, tags=post.tags, rating=post.rating, score=post.score,
            width=post.width, height=post.height, source=post.source, created_at=post.created_at,
            parent_id=post.parent_id,
        )


class BooruPostPage(BaseModel):
    count: int
    page: int
    limit: int
    posts: list[BooruPost]


def _client(request: Request, site: str) -> GelbooruClient:
    if site not in SUPPORTED_SITES:
        raise NotFound(f"There is no booru site called '{site[:30]}' here; supported sites: {', '.join(SUPPORTED_SITES)}.")
    client: GelbooruClient | None = getattr(request.app.state, site, None)
    if client is None:
        raise UpstreamUnavailable(f"{site.capitalize()} is not set up on this server.")
    return client


@router.get("/v1/booru/{site}/posts", response_model=BooruPostPage, responses=errors(404, 422, *UPSTREAM))
async def search_posts(
    request: Request,
    site: str,
    tags: Annotated[str, Query(max_length=1000, description="space-separated tags, as on the site")] = "",
    page: Annotated[int, Query(ge=1, description="1-based page")] = 1,
    limit: Annotated[int, Query(ge=1, le=100)] = 40,
) -> BooruPostPage:
    """Search a booru site's posts, newest first (tags as plain strings)."""
    client = _client(request, site)
    if (page - 1) * limit >= DEPTH_LIMIT:
        raise Unprocessable(
            f"Gelbooru only pages through the first {DEPTH_LIMIT:,} results; narrow the tags "
            "or add id:<N to continue below a post id."
        )
    result = await client.search_posts(tags, page=page - 1, limit=limit)
    return BooruPostPage(
        count=result.count, page=page, limit=limit, posts=[BooruPost.from_post(p) for p in result.posts]
    )
