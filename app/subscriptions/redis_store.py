"""Subscriptions in Redis (scale-out mode): every API process sees the same ones.

One hash holds the documents, a sorted set their due times; a due check is claimed with
``SET NX PX`` on a key made of the subscription and its due time, so exactly one process runs it.
"""

from __future__ import annotations

import asyncio
from typing import Any

from redis.asyncio import Redis
from redis.exceptions import RedisError

from app.errors import StoreUnavailable
from app.subscriptions.models import Subscription

DOCS = "jmbooru:subscriptions"
DUE = "jmbooru:subscriptions:due"
CREATED = "jmbooru:subscriptions:created"
CLAIM = "jmbooru:subscriptions:claim:"
UNAVAILABLE = "The subscription store (Redis) is not reachable right now; try again in a moment."


class RedisSubscriptionStore:
    def __init__(self, redis: Redis) -> None:
        self.redis = redis
        # Many checks finish at once: they share the connection pool instead of exhausting it.
        self._slots = asyncio.Semaphore(32)

    async def open(self) -> None:
        return None

    async def close(self) -> None:
        return None

    async def _do(self, call: Any) -> Any:
        try:
            async with self._slots:
                return await call
        except (RedisError, OSError) as exc:
            raise StoreUnavailable(UNAVAILABLE) from exc

    async def get(self, sub_id: str) -> Subscription | None:
        raw = await self._do(self.redis.hget(DOCS, sub_id))
        return Subscription.model_validate_json(raw) if raw else None

    async def all(self) -> list[Subscription]:
        ids = await self._do(self.redis.zrange(CREATED, 0, -1))
        if not ids:
            return []
        docs = await self._do(self.redis.hmget(DOCS, ids))
        return [Subscription.model_validate_json(d) for d in docs if d]

    async def put(self, sub: Subscription) -> None:
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.hset(DOCS, sub.id, sub.model_dump_json())
            pipe.zadd(CREATED, {sub.id: sub.created_at}, nx=True)
            if sub.enabled and sub.next_check_at is not None:
                pipe.zadd(DUE, {sub.id: sub.next_check_at})
            else:
                pipe.zrem(DUE, sub.id)
            await self._do(pipe.execute())

    async def delete(self, sub_id: str) -> bool:
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.hdel(DOCS, sub_id)
            pipe.zrem(DUE, sub_id)
            pipe.zrem(CREATED, sub_id)
            removed, _, _ = await self._do(pipe.execute())
        return bool(removed)

    async def due(self, now: float, limit: int = 1000) -> list[str]:
        ids = await self._do(self.redis.zrangebyscore(DUE, "-inf", now, start=0, num=limit))
        return [str(i) for i in ids]

    async def claim(self, sub_id: str, due_at: float, ttl_seconds: float) -> bool:
        key = f"{CLAIM}{sub_id}:{due_at!r}"
        got = await self._do(self.redis.set(key, "1", nx=True, px=max(1000, int(ttl_seconds * 1000))))
        return bool(got)
