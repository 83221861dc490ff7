"""The periodic sweep, on a schedule: ``JobService.sweep`` expires archives whose time is up,
recovers jobs whose worker died, forgets old jobs and removes what dead jobs left."""

from __future__ import annotations

import logging
import time

from apscheduler.schedulers.asyncio import AsyncIOScheduler

from app.errors import StoreUnavailable
from app.jobs.service import JobService

log = logging.getLogger("jmbooru.cleanup")


class Sweeper:
    """Runs the sweep and remembers whether the job store was away, so that an outage costs one
    warning line (not a traceback per sweep) and the leases it broke are not held against workers."""

    def __init__(self, service: JobService) -> None:
        self.service = service
        self.away_since: float | None = None
        self.back_at = 0.0

    async def run(self) -> None:
        back_at = time.time() if self.away_since is not None else self.back_at
        try:
            expired = await self.service.sweep(store_back_at=back_at)
        except StoreUnavailable as exc:
            if self.away_since is None:
                self.away_since = time.time()
                log.warning("cleanup skipped until the job store is back: %s", exc.detail)
            return
        except Exception:
            log.exception("cleanup failed")
            return
        if self.away_since is not None:
            log.warning("cleanup: the job store is back after %.0f s", back_at - self.away_since)
            self.away_since = None
        self.back_at = back_at
        if expired:
            log.info("cleanup expired=%d", expired)


def start_cleanup(service: JobService, interval_seconds: float) -> AsyncIOScheduler:
    scheduler = AsyncIOScheduler()
    run_sweep = Sweeper(service).run  # a coroutine function: APScheduler awaits it on the loop

    scheduler.add_job(run_sweep, "interval", seconds=interval_seconds, id="sweep",
                      max_instances=1, coalesce=True)
    scheduler.start()
    return scheduler
