"""Builds the job engine once, at start-up, from the settings (embedded or Redis)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping
from typing import TYPE_CHECKING

from apscheduler.schedulers.asyncio import AsyncIOScheduler
from prometheus_client import start_http_server

from app import metrics
from app.archive_store import build_archive_store
from app.blocking import BlockingPool
from app.config import Settings
from app.jobs.album_runner import AlbumRunner
from app.jobs.booru_runner import BooruRunner
from app.jobs.cleanup import start_cleanup
from app.jobs.events import LocalEventHub
from app.jobs.queue import LocalJobQueue
from app.jobs.runner import Runner
from app.jobs.service import JobService
from app.jobs.specs import AlbumSpec, BooruSpec
from app.jobs.store import SqliteJobStore
from app.sources import jm as jm_source
from app.sources.booru.base import BooruSite
from app.sources.booru.registry import build_sites
from app.sources.jm_account import JmAccount
from app.sources.jm_pages import PageFetching
from app.storage import Storage

log = logging.getLogger("jmbooru")

if TYPE_CHECKING:  # taskiq is only imported in scale-out mode
    from taskiq import AsyncBroker


def build_runners(settings: Settings, album_pool: BlockingPool, pages: PageFetching,
                  booru_sites: Mapping[str, BooruSite]) -> dict[str, Runner]:
    """The runner of each job kind, by ``JobSpec.kind``."""
    return {AlbumSpec.kind: AlbumRunner(settings, album_pool, pages),
            BooruSpec.kind: BooruRunner(settings, booru_sites)}


_metrics_served: set[int] = set()


def serve_metrics(port: int) -> None:
    """Metrics on a port of their own, once per process (several processes on one host need
    their own ports: the second one to take a port logs why it could not)."""
    if port in _metrics_served:
        return
    try:
        start_http_server(port, registry=metrics.REGISTRY)
        _metrics_served.add(port)
    except OSError as exc:
        log.warning("metrics port %d not available in this process: %s", port, exc)


class Engine:
    """Everything a process needs to run jobs: pools, upstream clients, the job service, cleanup.

    An API process and a ``jmbooru worker`` build the same engine; a worker passes its taskiq
    broker and runs the jobs, an API process in Redis mode only queues them.
    """

    def __init__(self, settings: Settings, *, broker: AsyncBroker | None = None, is_worker: bool = False) -> None:
        self.settings = settings
        self.storage = Storage(settings.data_path)
        self.jm_pool = BlockingPool(settings.jm_threads, "jm")
        # Album downloads hold a thread each for the whole album (plus one for its cover), apart
        # from the read pool, so a burst of searches and a few downloads never wait on each other.
        self.album_pool = BlockingPool(2 * settings.max_concurrent_jobs + 2, "albums")
        self.files_pool = BlockingPool(2, "files")
        self.booru = build_sites(settings)
        self.jm = jm_source.JmSource(settings, self.jm_pool)
        self.jm_account = JmAccount(settings, self.jm_pool)
        # One per process: the memory bound and the kept-alive image connections serve every album job.
        self.pages = PageFetching(settings.album_pixel_budget_mb * 1024 * 1024)
        runners = build_runners(settings, self.album_pool, self.pages, self.booru)
        # Where finished archives live (JMBOORU_STORAGE): chosen here, once, for every part.
        self.archives = build_archive_store(settings, self.storage, self.files_pool)
        if settings.redis_url:
            try:
                from app.jobs.redis import build_redis_service
            except ImportError as exc:  # `uvicorn app.main:app` with JMBOORU_REDIS_URL but no extra
                raise RuntimeError(
                    f"JMBOORU_REDIS_URL is set, but scale-out mode needs the Redis extra ({exc.name} is missing): "
                    "pip install 'jmbooru[redis]'"
                ) from None

            self.jobs = build_redis_service(settings, self.storage, runners, self.files_pool,
                                            broker=broker, is_worker=is_worker, archives=self.archives)
        else:
            self.jobs = JobService(settings, self.storage, SqliteJobStore(self.storage.db_path), LocalEventHub(),
                                   LocalJobQueue(settings.max_concurrent_jobs), runners, self.files_pool,
                                   archives=self.archives)
        self._scheduler: AsyncIOScheduler | None = None
        self._is_worker = is_worker
        self._warm_up: asyncio.Task[None] | None = None

    async def start(self) -> None:
        self.storage.prepare()
        await self.archives.check()  # a missing bucket or refused credentials stop start-up with a sentence
        jm_source.apply_module_settings(self.settings)
        await self.jobs.start()
        self._scheduler = start_cleanup(self.jobs, self.settings.cleanup_interval_seconds)
        if self.settings.metrics_port:
            serve_metrics(self.settings.metrics_port)
        if not self._is_worker:  # the first read must not pay for creating the JM client
            self._warm_up = asyncio.create_task(self.jm.warm_up(), name="jm-warm-up")

    async def stop(self) -> None:
        if self._warm_up is not None:
            self._warm_up.cancel()
            await asyncio.gather(self._warm_up, return_exceptions=True)
        if self._scheduler is not None:
            self._scheduler.shutdown(wait=False)
        await self.jobs.stop()
        for site in self.booru.values():
            await site.aclose()
        self.jm_pool.shutdown(wait=False)
        self.album_pool.shutdown(wait=False)
        self.pages.close()
        await self.archives.close()
        self.files_pool.shutdown(wait=False)
