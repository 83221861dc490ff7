"""``jmbooru worker``: runs jobs from the Redis queue (scale-out mode) with taskiq."""

from __future__ import annotations

import logging
from typing import Any

from taskiq import TaskiqEvents, TaskiqState
from taskiq.cli.worker.args import WorkerArgs
from taskiq.cli.worker.run import start_listen

from app.blocking import BlockingPool
from app.config import Settings
from app.jobs.cleanup import start_cleanup
from app.jobs.redis_backend import TASK_NAME, TaskiqJobQueue, build_redis_service, make_broker
from app.jobs.wiring import build_runners
from app.sources import jm as jm_source
from app.sources.gelbooru import GelbooruClient
from app.storage import Storage

log = logging.getLogger("jmbooru.worker")


def run_worker(settings: Settings, *, log_level: str = "INFO") -> None:
    if not settings.redis_url:
        raise SystemExit("jmbooru worker needs JMBOORU_REDIS_URL (redis://host:6379/0): it runs jobs from Redis.")
    broker = make_broker(settings)
    state: dict[str, Any] = {}

    async def run_job(job_id: str) -> None:
        queue: TaskiqJobQueue = state["service"].queue
        await queue.execute(job_id)

    broker.register_task(run_job, task_name=TASK_NAME)

    @broker.on_event(TaskiqEvents.WORKER_STARTUP)
    async def startup(_: TaskiqState) -> None:
        storage = Storage(settings.data_path)
        storage.prepare()
        jm_source.apply_module_settings(settings)
        jm_pool = BlockingPool(settings.jm_threads, "jm")
        files_pool = BlockingPool(2, "files")
        gelbooru = GelbooruClient.from_settings(settings)
        runners = build_runners(settings, jm_pool, {"gelbooru": gelbooru})
        service = build_redis_service(settings, storage, runners, files_pool, broker=broker, is_worker=True)
        await service.start()
        state.update(service=service, gelbooru=gelbooru, pools=(jm_pool, files_pool),
                     scheduler=start_cleanup(service, settings.cleanup_interval_seconds))
        log.info("worker ready concurrency=%d", settings.max_concurrent_jobs)

    @broker.on_event(TaskiqEvents.WORKER_SHUTDOWN)
    async def shutdown(_: TaskiqState) -> None:
        state["scheduler"].shutdown(wait=False)
        await state["service"].stop()
        await state["gelbooru"].aclose()
        for pool in state["pools"]:
            pool.shutdown(wait=False)

    args = WorkerArgs(
        broker=broker,  # type: ignore[arg-type]
        modules=[],
        log_level=log_level.upper(),  # type: ignore[arg-type]
        workers=1,
        max_async_tasks=settings.max_concurrent_jobs,
        max_prefetch=0,  # take a job only when a slot is free: a killed worker holds no waiting jobs
        shutdown_timeout=settings.shutdown_grace_seconds + 5,
        wait_tasks_timeout=settings.shutdown_grace_seconds,
    )
    logging.basicConfig(level=log_level.upper(), format="%(asctime)s %(levelname)s %(name)s %(message)s")
    start_listen(args)
