"""Booru thumbnails for the web page, fetched by the server: ``GET /v1/booru/{site}/preview?url=``.

The page loads nothing from another origin. Thumbnails come through the server because the image
host may be reachable only through the server's proxy, refuses hotlinks that carry no Referer, and
would otherwise learn who browses. Only what the site's own host policy allows is fetched (its
origin and its image hosts, as for dataset images: so this is no open proxy), only raster images
are passed on, and never more than a few megabytes.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Annotated

import httpx
from fastapi import APIRouter, FastAPI, Query, Request, Response

from app import __version__, metrics
from app.api.deps import BooruSiteDep
from app.api.schemas import UPSTREAM, errors
from app.config import Settings
from app.errors import BadRequest, UpstreamError, UpstreamTimeout, UpstreamUnavailable

log = logging.getLogger("jmbooru.previews")

IMAGE_TYPES = frozenset({"image/jpeg", "image/png", "image/gif", "image/webp", "image/avif"})
MAX_PREVIEW_BYTES = 4 << 20
TIMEOUT_SECONDS = 15.0


@asynccontextmanager
async def _lifespan(app: FastAPI) -> AsyncIterator[None]:
    settings: Settings = app.state.settings
    # JMBOORU_PROXY and JMBOORU_USER_AGENT (api.md) once the settings have them; HTTPS_PROXY meanwhile.
    proxy: str = getattr(settings, "proxy", "") or ""
    user_agent: str = getattr(settings, "user_agent", "") or f"jmbooru/{__version__}"
    async with httpx.AsyncClient(
        timeout=httpx.Timeout(TIMEOUT_SECONDS),
        follow_redirects=False,  # a redirect could leave the allowed hosts
        headers={"User-Agent": user_agent},
        proxy=proxy or None,
        limits=httpx.Limits(max_connections=16, max_keepalive_connections=8),
    ) as client:
        app.state.preview_http = client
        yield


router = APIRouter(tags=["booru"], lifespan=_lifespan)


@router.get(
    "/v1/booru/{site}/preview",
    response_class=Response,
    responses={
        200: {"content": {t: {"schema": {"type": "string", "format": "binary"}} for t in sorted(IMAGE_TYPES)},
              "description": "The thumbnail."},
        **errors(400, 404, 422, *UPSTREAM),
    },
)
async def preview(
    request: Request,
    booru: BooruSiteDep,
    url: Annotated[str, Query(max_length=2000, description="a post's preview_url, as the posts search gave it")],
) -> Response:
    """Fetch a post's thumbnail from the site's image host (the web page shows these)."""
    # The same rule as for dataset images: the site's origin or its image hosts, nothing else.
    if not booru.image_allowed(url):
        raise BadRequest(f"That address is not one of {booru.info.name}'s image hosts: pass a preview_url from "
                         "the posts search.")
    base_url = booru.info.url.rstrip("/")
    client: httpx.AsyncClient = request.app.state.preview_http
    name = booru.info.name
    site = booru.info.site
    answered = False  # counted once: with its answer, or with the failure that came instead
    try:
        async with client.stream("GET", url, headers={"Referer": f"{base_url}/"}) as upstream:
            metrics.upstream(site, "ok" if upstream.status_code < 400 else str(upstream.status_code))
            answered = True
            media_type = upstream.headers.get("content-type", "").split(";")[0].strip().lower()
            if upstream.status_code != 200 or media_type not in IMAGE_TYPES:
                log.info("preview refused site=%s status=%s type=%s", site, upstream.status_code, media_type)
                raise UpstreamError(f"{name} did not send this thumbnail (HTTP {upstream.status_code}).")
            data = bytearray()
            async for chunk in upstream.aiter_bytes():
                data += chunk
                if len(data) > MAX_PREVIEW_BYTES:
                    raise UpstreamError(f"{name} sent a thumbnail larger than {MAX_PREVIEW_BYTES >> 20} MiB.")
    except httpx.InvalidURL as exc:  # not an HTTPError; the host policy should have refused it already
        raise BadRequest("That address is not a usable URL: pass a preview_url from the posts search.") from exc
    except httpx.TimeoutException as exc:
        if not answered:
            metrics.upstream(site, type(exc).__name__)
        raise UpstreamTimeout(f"{name} did not send the thumbnail in time.") from exc
    except httpx.HTTPError as exc:
        log.info("preview failed site=%s error=%s", site, type(exc).__name__)
        if not answered:
            metrics.upstream(site, type(exc).__name__)
        raise UpstreamUnavailable(f"{name}'s image host cannot be reached right now.") from exc
    return Response(bytes(data), media_type=media_type, headers={
        "Cache-Control": "public, max-age=86400",
        "X-Content-Type-Options": "nosniff",
    })
