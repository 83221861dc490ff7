"""The ASGI application: ``create_app(settings)`` and the module-level ``app`` for uvicorn."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI
from fastapi.middleware.cors import CORSMiddleware

from app import __version__
from app.api import jm as jm_api
from app.api import system
from app.blocking import BlockingPool
from app.config import Settings
from app.errors import install_error_handlers
from app.sources import jm as jm_source


def _configure_logging(level: str) -> None:
    logging.getLogger("jmbooru").setLevel(level.upper())
    if not logging.getLogger().handlers:
        logging.basicConfig(format="%(asctime)s %(levelname)s %(name)s %(message)s")


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or Settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        _configure_logging(settings.log_level)
        settings.data_path.mkdir(parents=True, exist_ok=True)
        jm_source.apply_module_settings(settings)
        jm_pool = BlockingPool(settings.jm_threads, "jm")
        app.state.jm = jm_source.JmSource(settings, jm_pool)
        try:
            yield
        finally:
            jm_pool.shutdown(wait=False)

    app = FastAPI(
        title="jmbooru",
        version=__version__,
        summary="Self-hosted downloads of JM comics and Gelbooru datasets, as jobs with WebSocket progress.",
        lifespan=lifespan,
    )
    app.state.settings = settings
    install_error_handlers(app)
    app.add_middleware(
        CORSMiddleware,
        allow_origins=settings.cors_origins,
        allow_methods=["*"],
        allow_headers=["*"],
        expose_headers=["Content-Disposition", "ETag", "Accept-Ranges", "Content-Range"],
    )
    app.include_router(system.router)
    app.include_router(jm_api.router)
    return app


app = create_app()
