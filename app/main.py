"""The ASGI application: ``create_app(settings)`` and the module-level ``app`` for uvicorn."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI
from fastapi.middleware.cors import CORSMiddleware

from app import __version__
from app.api import booru, downloads, jobs, system, ws
from app.api import jm as jm_api
from app.blocking import BlockingPool
from app.config import Settings
from app.errors import install_error_handlers
from app.jobs.cleanup import start_cleanup
from app.jobs.wiring import build_job_service, build_runners
from app.sources import jm as jm_source
from app.sources.gelbooru import GelbooruClient
from app.storage import Storage


def _configure_logging(level: str) -> None:
    logging.getLogger("jmbooru").setLevel(level.upper())
    if not logging.getLogger().handlers:
        logging.basicConfig(format="%(asctime)s %(levelname)s %(name)s %(message)s")


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or Settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        _configure_logging(settings.log_level)
        storage = Storage(settings.data_path)
        storage.prepare()
        jm_source.apply_module_settings(settings)
        jm_pool = BlockingPool(settings.jm_threads, "jm")
        files_pool = BlockingPool(2, "files")
        gelbooru = GelbooruClient.from_settings(settings)
        service = build_job_service(settings, storage, build_runners(settings, jm_pool, {"gelbooru": gelbooru}),
                                    files_pool)
        app.state.jm = jm_source.JmSource(settings, jm_pool)
        app.state.gelbooru = gelbooru
        app.state.jobs = service
        await service.start()
        scheduler = start_cleanup(service, settings.cleanup_interval_seconds)
        try:
            yield
        finally:
            scheduler.shutdown(wait=False)
            await service.stop()
            await gelbooru.aclose()
            jm_pool.shutdown(wait=False)
            files_pool.shutdown(wait=False)

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
        expose_headers=["Content-Disposition", "ETag", "Accept-Ranges", "Content-Range", "Location"],
    )
    for module in (system, jm_api, booru, downloads, jobs, ws):
        app.include_router(module.router)
    return app


app = create_app()
