"""Booru thumbnails for the web page, fetched by the server: ``GET /v1/booru/{site}/preview?url=``.

The page loads nothing from another origin. Thumbnails come through the server because the image
host may be reachable only through the server's proxy, refuses hotlinks that carry no Referer, and
would otherwise learn who browses. Only the site's own host, its subdomains and its configured
image hosts are fetched (so this is no open proxy), only raster images are passed on, and never
more than a few megabytes.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Annotated, Any
from urllib.parse import urlsplit

import httpx
from fastapi import APIRouter, FastAPI, Query, Request, Response

from app import __version__
from app.api.schemas import UPSTREAM, errors
from app.config import Settings
from app.errors import BadRequest, NotFound, UpstreamError, UpstreamTimeout, UpstreamUnavailable

log = logging.getLogger("jmbooru.previews")

KNOWN_SITES = ("gelbooru", "safebooru", "danbooru", "yandere", "konachan")  # api.md, Part 3
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


def _host_port(netloc_or_url: str) -> tuple[str, int | None]:
    parts = urlsplit(netloc_or_url if "//" in netloc_or_url else f"//{netloc_or_url}")
    return (parts.hostname or "").lower(), parts.port


def site_base_url(settings: Settings, site: str) -> str:
    base: Any = getattr(settings, f"{site}_url", None) if site in KNOWN_SITES else None
    if not isinstance(base, str) or not base:
        raise NotFound(f"There is no booru site called '{site[:30]}' here.")
    return base.rstrip("/")


def allowed_image_url(settings: Settings, site: str, url: str) -> bool:
    """The site's own host and port, its subdomains, or one of its configured image hosts."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return False
    try:
        target = (parts.hostname.lower(), parts.port)
    except ValueError:  # a port that is not a number
        return False
    extra: Any = getattr(settings, f"{site}_image_hosts", None) or []
    for entry in [site_base_url(settings, site), *[str(h) for h in extra]]:
        host, port = _host_port(entry)
        if not host:
            continue
        if target == (host, port):
            return True
        if target[1] is None and port is None and target[0].endswith(f".{host}"):
            return True
    return False


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
    site: str,
    url: Annotated[str, Query(max_length=2000, description="a post's preview_url, as the posts search gave it")],
) -> Response:
    """Fetch a post's thumbnail from the site's image host (the web page shows these)."""
    settings: Settings = request.app.state.settings
    base_url = site_base_url(settings, site)
    if not allowed_image_url(settings, site, url):
        raise BadRequest(f"That address is not one of {site}'s image hosts: pass a preview_url from the posts search.")
    client: httpx.AsyncClient = request.app.state.preview_http
    name = site.capitalize()
    try:
        async with client.stream("GET", url, headers={"Referer": f"{base_url}/"}) as upstream:
            media_type = upstream.headers.get("content-type", "").split(";")[0].strip().lower()
            if upstream.status_code != 200 or media_type not in IMAGE_TYPES:
                log.info("preview refused site=%s status=%s type=%s", site, upstream.status_code, media_type)
                raise UpstreamError(f"{name} did not send this thumbnail (HTTP {upstream.status_code}).")
            data = bytearray()
            async for chunk in upstream.aiter_bytes():
                data += chunk
                if len(data) > MAX_PREVIEW_BYTES:
                    raise UpstreamError(f"{name} sent a thumbnail larger than {MAX_PREVIEW_BYTES >> 20} MiB.")
    except httpx.TimeoutException as exc:
        raise UpstreamTimeout(f"{name} did not send the thumbnail in time.") from exc
    except httpx.HTTPError as exc:
        log.info("preview failed site=%s error=%s", site, type(exc).__name__)
        raise UpstreamUnavailable(f"{name}'s image host cannot be reached right now.") from exc
    return Response(bytes(data), media_type=media_type, headers={
        "Cache-Control": "public, max-age=86400",
        "X-Content-Type-Options": "nosniff",
    })
