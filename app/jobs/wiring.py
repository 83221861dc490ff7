"""Builds the job engine once, at start-up, from the settings (embedded or Redis)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

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
from app.jobs.specs import AlbumSpec, BooruSpec
from app.jobs.store import SqliteJobStore
from app.sources import jm as jm_source
from app.sources.gelbooru import GelbooruClient
from app.sources.jm_account import JmAccount
from app.sources.jm_pages import PageFetching
from app.storage import Storage

if TYPE_CHECKING:  # taskiq is only imported in scale-out mode
    from taskiq import AsyncBroker


def build_runners(settings: Settings, jm_pool: BlockingPool, pages: PageFetching,
                  booru_clients: dict[str, Any]) -> dict[str, Runner]:
    """The runner of each job kind, by ``JobSpec.kind``."""
    return {AlbumSpec.kind: AlbumRunner(settings, jm_pool, pages), BooruSpec.kind: BooruRunner(settings, booru_clients)}


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
        self.gelbooru = GelbooruClient.from_settings(settings)
        self.jm = jm_source.JmSource(settings, self.jm_pool)
        self.jm_account = JmAccount(settings, self.jm_pool)
        # One per process: the memory bound and the kept-alive image connections serve every album job.
        self.pages = PageFetching(settings.album_pixel_budget_mb * 1024 * 1024)
        runners = build_runners(settings, self.jm_pool, self.pages, {"gelbooru": self.gelbooru})
        if settings.redis_url:
            from app.jobs.redis_backend import build_redis_service

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
        await self.gelbooru.aclose()
        self.jm_pool.shutdown(wait=False)
        self.pages.close()
        self.files_pool.shutdown(wait=False)
