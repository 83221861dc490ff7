"""The ASGI application: ``create_app(settings)`` and the module-level ``app`` for uvicorn."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI
from fastapi.middleware.cors import CORSMiddleware

from app import __version__
from app.api import booru, downloads, favorites, jobs, system, ws
from app.api import jm as jm_api
from app.api.errors import install_error_handlers
from app.api.response_cache import ResponseCache
from app.config import Settings
from app.jobs.wiring import Engine


def _configure_logging(level: str) -> None:
    logging.getLogger("jmbooru").setLevel(level.upper())
    if not logging.getLogger().handlers:
        logging.basicConfig(format="%(asctime)s %(levelname)s %(name)s %(message)s")


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or Settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        _configure_logging(settings.log_level)
        engine = Engine(settings)
        app.state.jm = engine.jm
        app.state.jm_account = engine.jm_account
        app.state.gelbooru = engine.gelbooru
        app.state.jobs = engine.jobs
        await engine.start()
        try:
            yield
        finally:
            await engine.stop()

    app = FastAPI(
        title="jmbooru",
        version=__version__,
        summary="Self-hosted downloads of JM comics and Gelbooru datasets, as jobs with WebSocket progress.",
        lifespan=lifespan,
    )
    app.state.settings = settings
    install_error_handlers(app)
    # Added first, so it sits inside CORS: replayed answers still get their CORS headers.
    app.add_middleware(ResponseCache, ttl_seconds=settings.cache_ttl_seconds)
    app.add_middleware(
        CORSMiddleware,
        allow_origins=settings.cors_origins,
        allow_methods=["*"],
        allow_headers=["*"],
        expose_headers=["Content-Disposition", "ETag", "Accept-Ranges", "Content-Range", "Location"],
    )
    # favorites before system: /v1/favorites must not be taken for system's /v1/{timestamp}
    for module in (favorites, system, jm_api, booru, downloads, jobs, ws):
        app.include_router(module.router)
    return app


app = create_app()
