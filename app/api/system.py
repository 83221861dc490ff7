"""Health and clock endpoints (compatible with JMComic_Server_API)."""

from __future__ import annotations

import math
import os
import time
from typing import Any

from fastapi import APIRouter, Path, Request

from app import __version__
from app.api.schemas import Clock, Health, errors
from app.errors import NotFound

router = APIRouter(tags=["system"])


def _base(request: Request) -> dict[str, Any]:
    settings = request.app.state.settings
    return {
        "status": "ok",
        # The WatchJM app accepts a server only when it names itself like JMComic_Server_API.
        "app": "jmcomic_server_api",
        "version": __version__,
        "mode": "redis" if settings.redis_url else "embedded",
        "storage": settings.storage,  # from the settings: never waits on the bucket
        "server_time": int(time.time() * 1000),
        "pid": os.getpid(),  # which API process answered (useful behind several workers)
    }


@router.get("/v1/health", response_model=Health)
async def health(request: Request) -> dict[str, Any]:
    """Report that the server is up, with its version and mode."""
    return _base(request)


@router.get("/v1/{timestamp}", response_model=Clock, responses=errors(404))
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
