"""Annotated dependencies shared by the endpoint modules.

They are ``async def`` on purpose: FastAPI runs a plain ``def`` dependency in its thread pool,
a thread round trip per request just to read ``app.state``.
"""

from __future__ import annotations

import secrets
from typing import Annotated

from fastapi import Depends, Request, Security, WebSocket
from fastapi.security import APIKeyHeader, APIKeyQuery

from app.config import Settings
from app.errors import Unauthorized
from app.jobs.service import JobService
from app.sources.booru.base import BooruSite
from app.sources.booru.registry import unknown_site
from app.sources.jm import JmSource


async def get_settings(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


async def get_jm(request: Request) -> JmSource:
    jm: JmSource = request.app.state.jm
    return jm


async def get_jobs(request: Request) -> JobService:
    jobs: JobService = request.app.state.jobs
    return jobs


async def get_booru_site(request: Request, site: str) -> BooruSite:
    """The ``{site}`` path parameter as a site object (unknown: 404 listing the sites)."""
    sites: dict[str, BooruSite] = request.app.state.booru
    found = sites.get(site)
    if found is None:
        raise unknown_site(site, sites)
    return found


def key_matches(settings: Settings, given: str | None) -> bool:
    if not settings.api_key:
        return True
    return given is not None and secrets.compare_digest(given.encode(), settings.api_key.encode())


# Declared as security schemes, so that /docs offers "Authorize" and documents where the key goes.
_KEY_HEADER = APIKeyHeader(name="X-API-Key", auto_error=False,
                           description="JMBOORU_API_KEY, when the server sets one")
_KEY_QUERY = APIKeyQuery(name="api_key", auto_error=False,
                         description="the same key, for WebSockets and links, where headers cannot be set")


KEY_REQUIRED_SENTENCE = "This server needs an API key: send it in the X-API-Key header (or as ?api_key=)."


async def require_api_key(
    request: Request,
    header: Annotated[str | None, Security(_KEY_HEADER)] = None,
    query: Annotated[str | None, Security(_KEY_QUERY)] = None,
) -> None:
    """When JMBOORU_API_KEY is set, starting, cancelling and fetching jobs need it."""
    settings: Settings = request.app.state.settings
    if not key_matches(settings, header or query):
        raise Unauthorized(KEY_REQUIRED_SENTENCE)


def websocket_allowed(ws: WebSocket) -> tuple[bool, str]:
    """Check the API key (header or ?api_key=) and the Origin of a WebSocket upgrade."""
    settings: Settings = ws.app.state.settings
    given = ws.headers.get("x-api-key") or ws.query_params.get("api_key")
    if not key_matches(settings, given):
        return False, "an API key is required (?api_key=...)"
    if not origin_allowed(ws.headers.get("origin"), ws.headers.get("host"), settings.cors_origins):
        return False, "this origin is not allowed"
    return True, ""


def origin_allowed(origin: str | None, host: str | None, allowed: list[str]) -> bool:
    """Whether a WebSocket upgrade's ``Origin`` may connect under ``JMBOORU_CORS_ORIGINS``.

    Browsers always send ``Origin`` on a WebSocket upgrade and scripts cannot forge it, so with a
    list set, a page from another origin cannot use a client id it learnt (or guessed). Apps and
    scripts send none and are allowed: they could send any Origin they like, so only the API key
    keeps them out. The server's own web page (Origin equal to the Host it asked) is always allowed.
    """
    if not origin or "*" in allowed:
        return True
    origin = origin.strip().lower().rstrip("/")
    if origin in {entry.strip().lower().rstrip("/") for entry in allowed}:
        return True
    scheme, _, netloc = origin.partition("://")
    return scheme in ("http", "https") and bool(host) and netloc == (host or "").strip().lower()


SettingsDep = Annotated[Settings, Depends(get_settings)]
JmDep = Annotated[JmSource, Depends(get_jm)]
JobsDep = Annotated[JobService, Depends(get_jobs)]
BooruSiteDep = Annotated[BooruSite, Depends(get_booru_site)]
ApiKey = Depends(require_api_key)
