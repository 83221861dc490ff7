"""The subscription scheduler: every tick, the due checks start (each claimed once across processes)."""

from __future__ import annotations

import logging
from datetime import UTC, datetime

from apscheduler.schedulers.asyncio import AsyncIOScheduler

from app.subscriptions.service import SubscriptionService

log = logging.getLogger("jmbooru.subscriptions")


def start_scheduler(service: SubscriptionService, tick_seconds: float) -> AsyncIOScheduler:
    scheduler = AsyncIOScheduler()
    warned = False

    async def tick() -> None:
        nonlocal warned
        try:
            await service.run_due()
            warned = False
        except Exception as exc:  # the store is away: one line per outage, and the next tick tries again
            if not warned:
                log.warning("subscription tick skipped: %s", getattr(exc, "detail", type(exc).__name__))
                warned = True

    # The first tick comes at once: a check overdue at start-up runs without waiting a whole tick.
    scheduler.add_job(tick, "interval", seconds=tick_seconds, id="subscriptions", max_instances=1,
                      coalesce=True, next_run_time=datetime.now(UTC))
    scheduler.start()
    return scheduler
