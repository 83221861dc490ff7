"""The periodic sweep, on a schedule: ``JobService.sweep`` expires archives whose time is up,
recovers jobs whose worker died, forgets old jobs and removes what dead jobs left."""

from __future__ import annotations

import logging

from apscheduler.schedulers.asyncio import AsyncIOScheduler

from app.jobs.service import JobService

log = logging.getLogger("jmbooru.cleanup")

async def sweep(service: JobService) -> int:
    """One pass of the sweep (``JobService.sweep``); returns how many archives expired."""
    return await service.sweep()


def start_cleanup(service: JobService, interval_seconds: float) -> AsyncIOScheduler:
    scheduler = AsyncIOScheduler()

    async def run_sweep() -> None:
        try:
            expired = await sweep(service)
            if expired:
                log.info("cleanup expired=%d", expired)
        except Exception:
            log.exception("cleanup failed")

    scheduler.add_job(run_sweep, "interval", seconds=interval_seconds, id="sweep",
                      max_instances=1, coalesce=True)
    scheduler.start()
    return scheduler
