"""Builds the job engine once, at start-up, from the settings (embedded or Redis)."""

from __future__ import annotations

from typing import Any

from app.blocking import BlockingPool
from app.config import Settings
from app.jobs.album_runner import AlbumRunner
from app.jobs.booru_runner import BooruRunner
from app.jobs.events import LocalEventHub
from app.jobs.queue import LocalJobQueue
from app.jobs.runner import Runner
from app.jobs.service import JobService
from app.jobs.store import SqliteJobStore
from app.storage import Storage


def build_runners(settings: Settings, jm_pool: BlockingPool, booru_clients: dict[str, Any]) -> dict[str, Runner]:
    return {"album": AlbumRunner(settings, jm_pool), "booru": BooruRunner(settings, booru_clients)}


def build_job_service(settings: Settings, storage: Storage, runners: dict[str, Runner],
                      files_pool: BlockingPool) -> JobService:
    if settings.redis_url:
        from app.jobs.redis_backend import build_redis_service

        return build_redis_service(settings, storage, runners, files_pool)
    return JobService(
        settings,
        storage,
        SqliteJobStore(storage.db_path),
        LocalEventHub(),
        LocalJobQueue(settings.max_concurrent_jobs),
        runners,
        files_pool,
    )
