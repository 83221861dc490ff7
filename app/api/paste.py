"""Paste a link: ``POST /v1/download/url`` starts the download a JM or booru URL points at."""

from __future__ import annotations

from typing import Any, TypeVar

from fastapi import APIRouter, Request, Response
from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from app.api.deps import ApiKey, JmDep, JobsDep, SettingsDep
from app.api.downloads import (
    AlbumDownloadRequest,
    BooruDownloadRequest,
    PoolDownloadRequest,
    accepted,
    start_album,
    start_booru,
    start_pool,
)
from app.api.schemas import UPSTREAM, Accepted, errors
from app.errors import Unprocessable
from app.sources.booru.base import BooruSite
from app.sources.booru.sites import SITES
from app.sources.links import Link, SiteHosts, resolve_link

router = APIRouter(tags=["downloads"], dependencies=[ApiKey], responses=errors(401, 422, 503))

Options = TypeVar("Options", bound=BaseModel)


class PasteRequest(BaseModel):
    # The other keys belong to the endpoint the link resolves to; they are checked there.
    model_config = ConfigDict(extra="allow", json_schema_extra={"examples": [
        {"url": "https://18comic.vip/album/350234/", "format": "cbz"},
        {"url": "https://danbooru.donmai.us/posts?tags=landscape", "max_images": 50},
    ]})

    url: str = Field(min_length=1, max_length=2000, description="a JM album or chapter page, or a booru post "
                     "list, post or pool page of a configured site")


class PasteAccepted(Accepted):
    resolved: dict[str, Any] = Field(description="what the link points at: kind (jm_album, jm_chapter, "
                                     "booru_posts, booru_post) and its ids or tags")


def site_hosts(sites: dict[str, BooruSite]) -> list[SiteHosts]:
    return [SiteHosts(site=name, name=s.info.name, family=s.info.family, public_url=SITES[name].url
                      if name in SITES else s.info.url, configured_url=s.info.url) for name, s in sites.items()]


@router.post("/v1/download/url", status_code=202, response_model=PasteAccepted,
             responses=errors(400, 404, *UPSTREAM))
async def download_url(body: PasteRequest, request: Request, jobs: JobsDep, jm: JmDep,
                       settings: SettingsDep, response: Response) -> PasteAccepted:
    """Start the download a pasted link points at: a JM album or chapter, a booru tag search, post or pool."""
    sites: dict[str, BooruSite] = request.app.state.booru
    link = resolve_link(body.url, site_hosts(sites))
    options = dict(body.model_extra or {})
    if link.kind == "booru_pool":
        answer = await start_pool(sites[link.site], int(link.pool_id), _options(PoolDownloadRequest, options), jobs)
        resolved: dict[str, Any] = {"kind": link.kind, "site": link.site, "pool_id": int(link.pool_id)}
    elif link.kind in ("jm_album", "jm_chapter"):
        answer, resolved = await _start_jm(link, options, jobs, jm)
    else:
        if "tags" in options:
            raise Unprocessable("The link already gives the tags: leave 'tags' out, or use "
                                "/v1/download/booru/{site} with tags of your own.")
        if link.kind == "booru_post":
            options.setdefault("max_images", 1)
        request_body = _options(BooruDownloadRequest, {**options, "tags": link.tags})
        answer = await start_booru(sites[link.site], request_body, jobs, settings)
        resolved = {"kind": link.kind, "site": link.site, "tags": link.tags}
        if link.post_id:
            resolved["post_id"] = link.post_id
    return accepted(PasteAccepted(**answer.model_dump(), resolved=resolved), response)


async def _start_jm(link: Link, options: dict[str, Any], jobs: JobsDep, jm: JmDep
                    ) -> tuple[Accepted, dict[str, Any]]:
    album_id = link.album_id
    resolved: dict[str, Any] = {"kind": link.kind}
    if link.kind == "jm_chapter":
        if "chapters" in options:
            raise Unprocessable("A chapter link already picks its chapter: leave 'chapters' out, or paste "
                                "the album's link to choose chapters.")
        album_id = await jm.chapter_album(link.chapter_id)  # a 404 for a chapter JM does not know
        options["chapters"] = [link.chapter_id]
        resolved["chapter_id"] = link.chapter_id
    resolved["album_id"] = album_id
    answer = await start_album(jm, jobs, album_id, _options(AlbumDownloadRequest, options))
    return answer, resolved


def _options(model: type[Options], values: dict[str, Any]) -> Options:
    """The other keys, checked by the endpoint's own model (the same sentences as there)."""
    try:
        return model.model_validate(values)
    except ValidationError as exc:
        raise RequestValidationError(exc.errors()) from None
