"""Builds the subscription service for a process from its settings (SQLite, or Redis in scale-out)."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from typing import TYPE_CHECKING

from app.blocking import BlockingPool
from app.config import Settings
from app.subscriptions import notify
from app.subscriptions.checks import CheckSources
from app.subscriptions.service import Submit, SubscriptionService
from app.subscriptions.store import SqliteSubscriptionStore, SubscriptionStore

if TYPE_CHECKING:
    from app.sources.booru.base import BooruSite
    from app.sources.jm import JmSource
    from app.sources.jm_account import JmAccount


def build_subscriptions(settings: Settings, pool: BlockingPool, jm: JmSource, account: JmAccount,
                        booru: Mapping[str, BooruSite], submit: Submit) -> SubscriptionService:
    store: SubscriptionStore
    if settings.redis_url:
        from app.jobs.redis.store import connect
        from app.subscriptions.redis_store import RedisSubscriptionStore

        store = RedisSubscriptionStore(connect(settings.redis_url))
    else:
        store = SqliteSubscriptionStore(settings.data_path / "subscriptions.db", pool)
    limits: dict[str, asyncio.Semaphore] = {}

    def site_limit(site: str) -> asyncio.Semaphore:
        if site not in limits:
            limits[site] = asyncio.Semaphore(settings.subscription_concurrency)
        return limits[site]

    async def send(urls: list[str], title: str, body: str) -> None:
        await notify.send(pool, urls, title, body)

    return SubscriptionService(settings, store, CheckSources(jm, account, booru, site_limit), submit, send)
