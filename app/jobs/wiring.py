"""Builds the job engine once, at start-up, from the settings (embedded or Redis)."""

from __future__ import annotations

import asyncio
import logging
import os
from typing import TYPE_CHECKING

from apscheduler.schedulers.asyncio import AsyncIOScheduler
from prometheus_client import start_http_server

from app import __version__, logs, metrics
from app.archive_store import build_archive_store
from app.blocking import BlockingPool
from app.config import Settings, mask_password
from app.errors import is_disk_full
from app.jobs.cleanup import start_cleanup
from app.jobs.events import LocalEventHub
from app.jobs.kinds import RunnerParts, build_runners
from app.jobs.queue import LocalJobQueue
from app.jobs.service import JobService
from app.jobs.store import SqliteJobStore
from app.outputs.library import Library
from app.outputs.scans import ScanTriggers
from app.sources import jm as jm_source
from app.sources.booru.files import ImagePools
from app.sources.booru.registry import build_sites
from app.sources.jm_account import JmAccount
from app.sources.jm_pages import PageFetching
from app.storage import Storage
from app.subscriptions.build import build_subscriptions
from app.subscriptions.scheduler import start_scheduler

log = logging.getLogger("jmbooru")

if TYPE_CHECKING:  # taskiq is only imported in scale-out mode
    from taskiq import AsyncBroker


def startup_line(settings: Settings, *, is_worker: bool) -> str:
    """What an operator checks first, in one line: mode, data folder, API key, proxy (no secret)."""
    if settings.redis_url:
        mode = f"redis ({mask_password(settings.redis_url)})"
    else:
        mode = "embedded"
    if settings.proxy:
        proxy = mask_password(settings.proxy)
    else:
        from_env = next((f"{k}={mask_password(os.environ[k])}" for k in _PROXY_VARIABLES if os.environ.get(k)), "")
        proxy = f"none set ({from_env} from the environment)" if from_env else "none"
    role = "worker" if is_worker else "server"
    return (f"jmbooru {__version__} {role} starting: mode={mode} data={settings.data_path} "
            f"api_key={'on' if settings.api_key else 'off'} proxy={proxy}")


_PROXY_VARIABLES = ("HTTPS_PROXY", "https_proxy", "ALL_PROXY", "all_proxy", "HTTP_PROXY", "http_proxy")
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
        # Making and moving aside jobs' work folders: quick calls that must not wait behind an archive build.
        self.folders_pool = BlockingPool(2, "folders")
        # Booru images on their way to disk (writes and hashing) and their measuring for the exports.
        self.image_pools = ImagePools.create()
        # Pillow work for OPDS pages (decode, descramble, scale, encode): two threads, apart from jmcomic's.
        self.opds_pool = BlockingPool(2, "opds-pages")
        self.booru = build_sites(settings)
        self.jm = jm_source.JmSource(settings, self.jm_pool)
        self.jm_account = JmAccount(settings, self.jm_pool)
        # One per process: the memory bound and the kept-alive image connections serve every album job.
        self.pages = PageFetching(settings.album_pixel_budget_mb * 1024 * 1024)
        runners = build_runners(RunnerParts(settings, self.album_pool, self.pages, self.booru, self.image_pools,
                                            album_details=self.jm.recent_album_detail))
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
                                            broker=broker, is_worker=is_worker, archives=self.archives,
                                            folders_pool=self.folders_pool)
        else:
            self.jobs = JobService(settings, self.storage, SqliteJobStore(self.storage.db_path), LocalEventHub(),
                                   LocalJobQueue(settings.max_concurrent_jobs), runners, self.files_pool,
                                   archives=self.archives, folders_pool=self.folders_pool)
        if settings.library_dir is not None:
            self.jobs.library = Library(settings.library_dir)
            self.jobs.scans = ScanTriggers(settings, settings.user_agent)
        self._scheduler: AsyncIOScheduler | None = None
        self._is_worker = is_worker
        # Subscriptions are checked by API processes (workers only run the jobs they start).
        self.subscriptions_pool = BlockingPool(2, "subscriptions")
        self.subscriptions = build_subscriptions(settings, self.subscriptions_pool, self.jm, self.jm_account,
                                                 self.booru, self.jobs.submit)
        self._subscription_scheduler: AsyncIOScheduler | None = None
        self._warm_up: asyncio.Task[None] | None = None

    async def start(self) -> None:
        logging.getLogger(logs.STARTUP_LOGGER).info("%s", startup_line(self.settings, is_worker=self._is_worker))
        try:
            self.storage.prepare()
        except OSError as exc:
            if not is_disk_full(exc):
                raise
            # Start anyway: reads and health work; downloads are refused until there is space.
            log.warning("the data folder %s is on a full disk; its folders are made once there is space",
                        self.settings.data_path)
        await self.archives.check()  # a missing bucket or refused credentials stop start-up with a sentence
        jm_source.apply_module_settings(self.settings)
        await self.jobs.start()
        self._scheduler = start_cleanup(self.jobs, self.settings.cleanup_interval_seconds)
        if self.settings.metrics_port:
            serve_metrics(self.settings.metrics_port)
        if not self._is_worker:  # the first read must not pay for creating the JM client
            self._warm_up = asyncio.create_task(self.jm.warm_up(), name="jm-warm-up")
            await self.subscriptions.store.open()
            self._subscription_scheduler = start_scheduler(self.subscriptions,
                                                           self.settings.subscription_tick_seconds)

    async def stop(self) -> None:
        if self._warm_up is not None:
            self._warm_up.cancel()
            await asyncio.gather(self._warm_up, return_exceptions=True)
        if self._scheduler is not None:
            self._scheduler.shutdown(wait=False)
        if self._subscription_scheduler is not None:
            self._subscription_scheduler.shutdown(wait=False)
            await self.subscriptions.stop()
            await self.subscriptions.store.close()
        await self.jobs.stop()
        for site in self.booru.values():
            await site.aclose()
        self.jm_pool.shutdown(wait=False)
        self.album_pool.shutdown(wait=False)
        self.pages.close()
        await self.archives.close()
        self.files_pool.shutdown(wait=False)
        self.folders_pool.shutdown(wait=False)
        self.image_pools.shutdown()
        self.opds_pool.shutdown(wait=False)
        self.subscriptions_pool.shutdown(wait=False)
