"""The ASGI application: ``create_app(settings)`` and the module-level ``app`` for uvicorn."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from app import __version__, logs, serving
from app.api import booru, downloads, favorites, jobs, paste, subscriptions, system, web, ws
from app.api import jm as jm_api
from app.api import metrics as metrics_api
from app.api import opds as opds_api
from app.api.body_guard import BodyGuard
from app.api.edge import Edge, LightCors
from app.api.errors import install_error_handlers
from app.api.openapi import install_openapi
from app.api.response_cache import ResponseCache
from app.config import Settings
from app.jobs.wiring import Engine


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or Settings()
    # Here, not in the lifespan: uvicorn logs its first lines after importing the app.
    logs.configure(settings)
    serving.configure(settings.max_header_bytes, settings.header_timeout_seconds, settings.max_connections,
                      settings.body_timeout_seconds)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        # The connection limits go on when the app starts serving, before uvicorn accepts a
        # connection: `jmbooru serve`, `uvicorn app.main:app`, gunicorn's worker and the Dockerfile alike.
        serving.guard_uvicorn()
        engine = Engine(settings)
        app.state.jm = engine.jm
        app.state.jm_account = engine.jm_account
        app.state.booru = engine.booru
        app.state.jobs = engine.jobs
        app.state.subscriptions = engine.subscriptions
        app.state.opds_pool = engine.opds_pool
        await engine.start()
        if settings.gc_freeze:
            serving.freeze_startup_heap()
        try:
            yield
        finally:
            await engine.stop()

    app = FastAPI(
        title="jmbooru",
        version=__version__,
        summary="Self-hosted downloads of JM comics and booru datasets, as jobs with WebSocket progress.",
        lifespan=lifespan,
        docs_url=None,  # /docs and /redoc are served by app.api.web, with their assets from the package
        redoc_url=None,
    )
    app.state.settings = settings
    install_error_handlers(app)
    install_openapi(app)
    # Added first, so it sits inside CORS: replayed answers still get their CORS headers.
    app.add_middleware(ResponseCache, ttl_seconds=settings.cache_ttl_seconds)
    # Inside CORS (its refusals carry CORS headers), outside routing: the key and the size of a
    # body are checked before any of the body is read.
    app.add_middleware(BodyGuard, max_body_bytes=settings.max_body_bytes)
    app.add_middleware(
        LightCors,
        allow_origins=settings.cors_origins,
        allow_methods=["*"],
        allow_headers=["*"],
        expose_headers=["Content-Disposition", "ETag", "Accept-Ranges", "Content-Range", "Location", "X-Request-ID"],
    )
    # Outermost: request ids and metrics see every request, cached replays and CORS preflights included.
    app.add_middleware(Edge)
    # Health first (the cheapest match for the most frequent request); the clock's /v1/{timestamp},
    # which would take any /v1/<word>, last.
    for module in (system, favorites, jobs, subscriptions, metrics_api, jm_api, booru, downloads, paste, ws, opds_api):
        app.include_router(module.router)
    app.include_router(system.clock_router)
    web.install(app)
    return app


app = create_app()
