"""The periodic sweep: expire archives whose time is up and remove what dead jobs left."""

from __future__ import annotations

import logging

from apscheduler.schedulers.asyncio import AsyncIOScheduler

from app.jobs.service import JobService

log = logging.getLogger("jmbooru.cleanup")


def start_cleanup(service: JobService, interval_seconds: float) -> AsyncIOScheduler:
    scheduler = AsyncIOScheduler()

    async def sweep() -> None:
        try:
            expired = await service.sweep()
            if expired:
                log.info("cleanup expired=%d", expired)
        except Exception:
            log.exception("cleanup failed")

    scheduler.add_job(sweep, "interval", seconds=interval_seconds, id="sweep",
                      max_instances=1, coalesce=True)
    scheduler.start()
    return scheduler
