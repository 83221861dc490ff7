"""JM read endpoints: rankings, search, album info and covers (compatible with JMComic_Server_API)."""

from __future__ import annotations

import hashlib
import re
from enum import StrEnum
from typing import Annotated, Any

from fastapi import APIRouter, Path, Query, Request, Response

from app.api.deps import JmDep
from app.api.schemas import (
    ALBUM_ID_PATTERN,
    UPSTREAM,
    AlbumInfo,
    CommentsPage,
    RankItem,
    SearchItem,
    errors,
)
from app.errors import BadRequest

router = APIRouter(tags=["jm"])

# [0-9], not \d: "１２３" or "١٢٣" (Unicode digits, which int() reads) is not album 123.
_ALBUM_ID = re.compile(r"(?:jm)?([0-9]{1,12})", re.IGNORECASE)


MAX_SEARCH_PAGE = 100
# Documented, not enforced by the framework: a malformed id gets the seed's 400 "Invalid album ID".
AlbumIdPath = Annotated[str, Path(description="JM album id (JM prefix allowed)", examples=["350234"],
                                  json_schema_extra={"pattern": ALBUM_ID_PATTERN})]


class RankPeriod(StrEnum):
    day = "day"
    week = "week"
    month = "month"
    all = "all"


def parse_album_id(raw: str) -> str:
    match = _ALBUM_ID.fullmatch(raw.strip())
    if match is None or int(match.group(1)) <= 0:
        # "Invalid album ID" is what the seed answers; its clients and tests look for it.
        raise BadRequest(f"Invalid album ID '{raw[:40]}': use the positive number, like 350234.")
    return str(int(match.group(1)))


@router.get("/v1/rank/{period}", response_model=list[RankItem], responses=errors(400, 422, *UPSTREAM))
async def rank(period: RankPeriod, jm: JmDep,
               page: Annotated[int, Query(json_schema_extra={"minimum": 1})] = 1) -> list[dict[str, str]]:
    """List the day, week, month or all-time ranking of albums."""
    if page < 1:
        raise BadRequest("page must be >= 1.")
    return await jm.ranking(period.value, page)


@router.get("/v1/search/{query}/{page}", response_model=list[SearchItem], responses=errors(400, 422, *UPSTREAM))
async def search(
    jm: JmDep,
    query: str = Path(max_length=200, description="text, tags, or an album id", examples=["romance"],
                      json_schema_extra={"pattern": r"\S"}),
    page: int = Path(description="1 to 100", json_schema_extra={"minimum": 1, "maximum": 100}),
) -> list[dict[str, str]]:
    """Search albums by text; a query that is an album id returns that album."""
    if not 1 <= page <= MAX_SEARCH_PAGE:
        # The seed's sentence (its clients and tests match "num must be between").
        raise BadRequest(f"num must be between 1 and {MAX_SEARCH_PAGE} (the page number of the search).")
    if not query.strip():
        raise BadRequest("The search query is empty.")
    return await jm.search(query.strip(), page)


@router.get("/v1/comments/{aid}", response_model=CommentsPage, responses=errors(400, 422, *UPSTREAM))
async def comments(aid: AlbumIdPath, jm: JmDep,
                   page: Annotated[int, Query(json_schema_extra={"minimum": 1})] = 1) -> dict[str, Any]:
    """One page of an album's comments (plain text, replies nested), as JMComic_Server_API serves them."""
    album_id = parse_album_id(aid)
    if page < 1:
        raise BadRequest("page must be >= 1.")
    return await jm.comments(album_id, page)


@router.get("/v1/info/{aid}", response_model=AlbumInfo, responses=errors(400, 404, *UPSTREAM))
async def info(aid: AlbumIdPath, jm: JmDep) -> dict[str, Any]:
    """Describe an album: title, tags, counts, authors and chapters."""
    album = await jm.album(parse_album_id(aid))
    return {
        "status": "success",
        "album_id": album.album_id,
        "title": album.title,
        "tag": album.tags,
        "view_count": album.views,
        "like_count": album.likes,
        "page_count": album.page_count,
        "method": "api",
        "authors": album.authors,
        "works": album.works,
        "actors": album.actors,
        "comment_count": album.comment_count,
        "pub_date": album.pub_date,
        "description": album.description,
        "chapters": album.chapters,
    }


@router.get(
    "/v1/get/cover/{aid}",
    response_class=Response,
    responses={
        200: {"content": {"image/jpeg": {"schema": {"type": "string", "format": "binary"}}},
              "description": "The cover, JPEG."},
        304: {"description": "Not modified (If-None-Match matched the ETag)."},
        **errors(400, 404, *UPSTREAM),
    },
)
async def cover(aid: AlbumIdPath, jm: JmDep, request: Request) -> Response:
    """Return an album's cover as JPEG bytes, cacheable by browsers and AsyncImage."""
    data = await jm.cover(parse_album_id(aid))
    etag = '"' + hashlib.md5(data, usedforsecurity=False).hexdigest() + '"'
    headers = {"Cache-Control": "public, max-age=86400", "ETag": etag}
    if etag in request.headers.get("if-none-match", ""):
        return Response(status_code=304, headers=headers)
    return Response(content=data, media_type="image/jpeg", headers=headers)
