"""The job queue on taskiq-redis: API processes kick job ids, ``jmbooru worker`` processes run them."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncGenerator
from typing import Any

from redis.asyncio import Redis
from taskiq import AsyncBroker
from taskiq.kicker import AsyncKicker
from taskiq.message import BrokerMessage
from taskiq_redis import ListQueueBroker

from app.config import Settings
from app.errors import StoreUnavailable
from app.jobs.queue import RunJob, finish_or_cancel
from app.jobs.redis.events import RedisEventHub
from app.jobs.redis.store import PREFIX, REDIS_DOWN

log = logging.getLogger("jmbooru.redis")

QUEUE_NAME = f"{PREFIX}:queue"
TASK_NAME = "jmbooru.run_job"
MAX_BACKOFF = 1.0  # a worker is back within a second of Redis


class ResilientListQueueBroker(ListQueueBroker):
    """taskiq-redis's list broker, surviving Redis restarts.

    Upstream ``listen`` only catches the built-in ConnectionError (redis-py raises its own), so a
    worker died the moment Redis went away; here it waits with backoff and listens again. A kick
    on a connection that went stale is tried again on a fresh one.
    """

    async def listen(self) -> AsyncGenerator[bytes, None]:
        backoff = 0.1
        while True:
            try:
                async with Redis(connection_pool=self.connection_pool) as redis_conn:
                    result = await redis_conn.brpop([self.queue_name])
                backoff = 0.1
                if result is not None:
                    data = result[1]
                    yield data if isinstance(data, bytes) else str(data).encode()
            except REDIS_DOWN as exc:
                log.warning("redis queue: connection lost (%s); listening again in %.1f s",
                            type(exc).__name__, backoff)
                await asyncio.sleep(backoff)
                backoff = min(MAX_BACKOFF, backoff * 2)

    async def kick(self, message: BrokerMessage) -> None:
        for attempt in range(3):
            try:
                await super().kick(message)
                return
            except REDIS_DOWN as exc:
                if attempt == 2:
                    raise StoreUnavailable("The job queue (Redis) is unreachable right now.") from exc
                await asyncio.sleep(0.05 * (attempt + 1))


def make_broker(settings: Settings) -> ListQueueBroker:
    # redis-py 8 gives every socket a 5 s read timeout; the listener blocks in BRPOP with no
    # timeout, so the socket must not time out either.
    return ResilientListQueueBroker(settings.redis_url, queue_name=QUEUE_NAME, socket_timeout=None,
                                    socket_connect_timeout=2)


class TaskiqJobQueue:
    """Jobs go to taskiq; ``jmbooru worker`` processes run them, at most N at once each.

    In an API process ``start`` only connects the broker. In a worker, taskiq calls
    ``execute`` for each message and cancellation requests arrive on the control channel.
    """

    def __init__(self, broker: AsyncBroker, hub: RedisEventHub, redis: Redis, *, is_worker: bool) -> None:
        self.broker = broker
        self.hub = hub
        self.redis = redis
        self.is_worker = is_worker
        self._running: dict[str, asyncio.Task[Any]] = {}
        self._run: RunJob | None = None
        hub.on_control.append(self._on_control)

    async def start(self, run: RunJob) -> None:
        self._run = run
        if not self.is_worker:
            await self.broker.startup()

    async def submit(self, job_id: str) -> None:
        kicker: AsyncKicker[Any, Any] = AsyncKicker(task_name=TASK_NAME, broker=self.broker, labels={})
        await kicker.kiq(job_id)

    async def holds(self, job_ids: set[str]) -> set[str]:
        """Which of ``job_ids`` have a message waiting in the queue (the messages carry the id)."""
        try:
            messages = await self.redis.lrange(QUEUE_NAME, 0, -1)
        except REDIS_DOWN as exc:
            raise StoreUnavailable("The job queue (Redis) is unreachable right now.") from exc
        text = "\n".join(str(m) for m in messages)
        return {job_id for job_id in job_ids if job_id in text}

    async def execute(self, job_id: str) -> None:
        assert self._run is not None
        task = asyncio.current_task()
        assert task is not None
        self._running[job_id] = task
        try:
            await self._run(job_id)
        finally:
            self._running.pop(job_id, None)

    async def cancel(self, job_id: str) -> bool:
        if job_id in self._running:
            self._running[job_id].cancel()
        else:
            await self.hub.control({"action": "cancel", "job_id": job_id})
        return True

    async def _on_control(self, payload: dict[str, Any]) -> None:
        if payload.get("action") == "cancel":
            task = self._running.get(str(payload.get("job_id")))
            if task is not None:
                task.cancel()

    async def stop(self, grace_seconds: float) -> None:
        await finish_or_cancel(list(self._running.values()), grace_seconds)
        if not self.is_worker:
            await self.broker.shutdown()
