"""Health and clock endpoints (compatible with JMComic_Server_API), and the formats this server makes."""

from __future__ import annotations

import json
import math
import os
import time
from typing import Any

from fastapi import APIRouter, Path, Request, Response
from pydantic import BaseModel, Field

from app import __version__
from app.api.schemas import Clock, Health, errors
from app.archives import FORMATS
from app.errors import NotFound
from app.sources.album_archive import LAYOUTS, options_problem

router = APIRouter(tags=["system"])
# /v1/{timestamp} takes any /v1/<word>: it is included after every other router (app.main).
clock_router = APIRouter(tags=["system"])


def _base(request: Request) -> dict[str, Any]:
    return base_answer(request.app.state.settings)


def base_answer(settings: Any) -> dict[str, Any]:
    """What /v1/health says (and /v1/{timestamp} says besides the latency)."""
    return {
        "status": "ok",
        # The WatchJM app accepts a server only when it names itself like JMComic_Server_API.
        "app": "jmcomic_server_api",
        "version": __version__,
        "mode": "redis" if settings.redis_url else "embedded",
        "storage": settings.storage,  # from the settings: never waits on the bucket
        "server_time": int(time.time() * 1000),
        "pid": os.getpid(),  # which API process answered (useful behind several workers)
        # Whether jobs need X-API-Key: the page reads the shared job list only when it can.
        "api_key_required": bool(settings.api_key),
        # Whether "dest": "library" works (JMBOORU_LIBRARY_DIR): the page offers "Save to library".
        "library": settings.library_dir is not None,
    }


class FormatOut(BaseModel):
    name: str = Field(description="the value of a request's format key")
    extension: str
    media_type: str
    description: str
    layouts: list[str] = Field(description="the layouts an album archive in this format may have")


class FormatList(BaseModel):
    formats: list[FormatOut]


@router.get("/v1/formats", response_model=FormatList)
async def formats() -> FormatList:
    """The archive formats this server makes (the registry every client, the CLI and the page read)."""
    return FormatList(formats=[
        FormatOut(name=f.name, extension=f.extension, media_type=f.media_type, description=f.description,
                  layouts=[layout for layout in LAYOUTS if options_problem(f.name, layout) is None])
        for f in FORMATS.values()])


@router.get("/v1/health", response_model=Health)
async def health(request: Request) -> Response:
    """Report that the server is up, with its version and mode."""
    # Encoded here, not validated against Health on every call: monitors poll this path hardest,
    # and base_answer builds exactly the documented shape (tests/test_edge.py checks it against Health).
    return Response(health_body(request.app.state.settings), media_type="application/json")


def health_body(settings: Any) -> bytes:
    """/v1/health's answer, encoded (also sent by ``app.api.edge.Edge`` without routing)."""
    return json.dumps(base_answer(settings), separators=(",", ":")).encode()


@clock_router.get("/v1/{timestamp}", response_model=Clock, responses=errors(404))
async def latency(
    request: Request,
    timestamp: str = Path(description="your clock in ms since the epoch; decimals allowed",
                          examples=["1764000000000.0"], json_schema_extra={"pattern": r"^[0-9]+(\.[0-9]+)?$"}),
) -> dict[str, Any]:
    """Echo the latency between the client's clock (ms since the epoch) and the server's."""
    try:
        client_ms = float(timestamp)
    except ValueError:
        client_ms = math.nan
    if not math.isfinite(client_ms):
        raise NotFound(f"There is no endpoint at /v1/{timestamp}. See /docs for the API.")
    now_ms = int(time.time() * 1000)
    answer = _base(request)
    # A whole number in a string, as the seed sends it: its clients read it with int("644").
    answer["latency"] = str(now_ms - int(client_ms))
    return answer
