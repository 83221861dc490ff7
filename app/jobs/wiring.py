"""Builds the job engine once, at start-up, from the settings (embedded or Redis)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING

from apscheduler.schedulers.asyncio import AsyncIOScheduler

from app.blocking import BlockingPool
from app.config import Settings
from app.jobs.album_runner import AlbumRunner
from app.jobs.booru_runner import BooruRunner
from app.jobs.cleanup import start_cleanup
from app.jobs.events import LocalEventHub
from app.jobs.queue import LocalJobQueue
from app.jobs.runner import Runner
from app.jobs.service import JobService
from app.jobs.store import SqliteJobStore
from app.sources import jm as jm_source
from app.sources.booru.base import BooruSite
from app.sources.booru.registry import build_sites
from app.storage import Storage

if TYPE_CHECKING:  # taskiq is only imported in scale-out mode
    from taskiq import AsyncBroker


def build_runners(settings: Settings, jm_pool: BlockingPool, booru_sites: Mapping[str, BooruSite]) -> dict[str, Runner]:
    return {"album": AlbumRunner(settings, jm_pool), "booru": BooruRunner(settings, booru_sites)}


class Engine:
    """Everything a process needs to run jobs: pools, upstream clients, the job service, cleanup.

    An API process and a ``jmbooru worker`` build the same engine; a worker passes its taskiq
    broker and runs the jobs, an API process in Redis mode only queues them.
    """

    def __init__(self, settings: Settings, *, broker: AsyncBroker | None = None, is_worker: bool = False) -> None:
        self.settings = settings
        self.storage = Storage(settings.data_path)
        self.jm_pool = BlockingPool(settings.jm_threads, "jm")
        self.files_pool = BlockingPool(2, "files")
        self.booru = build_sites(settings)
        self.jm = jm_source.JmSource(settings, self.jm_pool)
        runners = build_runners(settings, self.jm_pool, self.booru)
        if settings.redis_url:
            from app.jobs.redis import build_redis_service

            self.jobs = build_redis_service(settings, self.storage, runners, self.files_pool,
                                            broker=broker, is_worker=is_worker)
        else:
            self.jobs = JobService(settings, self.storage, SqliteJobStore(self.storage.db_path), LocalEventHub(),
                                   LocalJobQueue(settings.max_concurrent_jobs), runners, self.files_pool)
        self._scheduler: AsyncIOScheduler | None = None

    async def start(self) -> None:
        self.storage.prepare()
        jm_source.apply_module_settings(self.settings)
        await self.jobs.start()
        self._scheduler = start_cleanup(self.jobs, self.settings.cleanup_interval_seconds)

    async def stop(self) -> None:
        if self._scheduler is not None:
            self._scheduler.shutdown(wait=False)
        await self.jobs.stop()
        for site in self.booru.values():
            await site.aclose()
        self.jm_pool.shutdown(wait=False)
        self.files_pool.shutdown(wait=False)
