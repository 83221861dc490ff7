"""``jmbooru worker``: runs jobs from the Redis queue (scale-out mode) with taskiq."""

from __future__ import annotations

import logging

from taskiq import TaskiqEvents, TaskiqState
from taskiq.cli.worker.args import WorkerArgs
from taskiq.cli.worker.run import start_listen

from app import logs, serving
from app.config import Settings
from app.jobs.redis import TASK_NAME, make_broker
from app.jobs.wiring import Engine

log = logging.getLogger("jmbooru.worker")


def run_worker(settings: Settings, *, log_level: str = "INFO") -> None:
    broker = make_broker(settings)

    engine = Engine(settings, broker=broker, is_worker=True)

    async def run_job(job_id: str) -> None:
        await engine.jobs.execute(job_id)

    broker.register_task(run_job, task_name=TASK_NAME)

    @broker.on_event(TaskiqEvents.WORKER_STARTUP)
    async def startup(_: TaskiqState) -> None:
        await engine.start()
        if settings.gc_freeze:
            serving.freeze_startup_heap()
        log.info("worker ready concurrency=%d", settings.max_concurrent_jobs)

    @broker.on_event(TaskiqEvents.WORKER_SHUTDOWN)
    async def shutdown(_: TaskiqState) -> None:
        await engine.stop()

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
    logs.configure(settings, log_level)
    start_listen(args)
