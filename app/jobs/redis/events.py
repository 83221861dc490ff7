"""Events over Redis pub/sub: frames go to one channel; every process hears all of them and
delivers them to its own sockets.

One subscription per process (not one per socket) keeps Redis connections constant, and it is
active before any socket subscribes, so no frame published later can be missed. When Redis goes
away, the reader re-subscribes with backoff; frames published meanwhile are not lost for good:
followers re-read job records (see ``app.jobs.follow``).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from redis.asyncio import Redis

from app.blocking import mark_retrieved
from app.errors import StoreUnavailable
from app.jobs.events import Frame, LocalEventHub, Subscription
from app.jobs.redis.store import PREFIX, REDIS_DOWN

log = logging.getLogger("jmbooru.redis")

EVENTS_CHANNEL = f"{PREFIX}:events"
CONTROL_CHANNEL = f"{PREFIX}:control"
MAX_BACKOFF = 5.0

ControlHandler = Callable[[dict[str, Any]], Awaitable[None]]


class RedisEventHub:
    def __init__(self, redis: Redis) -> None:
        self.redis = redis
        self.local = LocalEventHub()
        self._reader: asyncio.Task[None] | None = None
        self._subscribed = asyncio.Event()
        self.on_control: list[ControlHandler] = []

    async def start(self) -> None:
        self._reader = asyncio.create_task(self._read(), name="redis-events")
        # Wait briefly for the subscription, so that frames published from now on reach us; if
        # Redis is down, start anyway (the reader keeps trying).
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(3):
                await self._subscribed.wait()

    async def _read(self) -> None:
        backoff = 0.1
        while True:
            pubsub = self.redis.pubsub(ignore_subscribe_messages=True)
            try:
                await pubsub.subscribe(EVENTS_CHANNEL, CONTROL_CHANNEL)
                self._subscribed.set()
                if backoff > 0.1:
                    log.warning("redis events: subscribed again")
                backoff = 0.1
                while True:
                    message = await pubsub.get_message(timeout=1.0)
                    if message is not None and message.get("type") == "message":
                        await self._dispatch(message)
            except asyncio.CancelledError:
                raise
            except REDIS_DOWN as exc:
                self._subscribed.clear()
                log.warning("redis events: connection lost (%s); retrying in %.1f s", type(exc).__name__, backoff)
            except Exception:
                self._subscribed.clear()
                log.exception("redis events: reader failed; retrying in %.1f s", backoff)
            finally:
                with contextlib.suppress(Exception):
                    await asyncio.shield(pubsub.aclose())
            await asyncio.sleep(backoff)
            backoff = min(MAX_BACKOFF, backoff * 2)

    async def _dispatch(self, message: dict[str, Any]) -> None:
        """Deliver one message; a malformed one is logged and skipped, never fatal."""
        try:
            payload = json.loads(message["data"])
            if message["channel"] == CONTROL_CHANNEL:
                if not isinstance(payload, dict):
                    raise ValueError("control payload is not an object")
                for handler in self.on_control:
                    await handler(payload)
                return
            topics, frame = payload["topics"], payload["frame"]
            if not isinstance(topics, list) or not isinstance(frame, dict):
                raise ValueError("events payload has the wrong shape")
            await self.local.publish([str(t) for t in topics], frame)
        except (ValueError, TypeError, KeyError) as exc:
            log.warning("redis events: malformed message skipped (%s: %s)", type(exc).__name__, str(exc)[:200])

    async def stop(self) -> None:
        if self._reader is not None:
            self._reader.cancel()
            await asyncio.gather(self._reader, return_exceptions=True)
        await self.local.stop()

    async def publish(self, topics: list[str], frame: Frame) -> None:
        try:
            sending = asyncio.ensure_future(
                self.redis.publish(EVENTS_CHANNEL, json.dumps({"topics": topics, "frame": frame})))
            sending.add_done_callback(mark_retrieved)  # read even if the publisher was cancelled
            await asyncio.shield(sending)
        except REDIS_DOWN as exc:
            raise StoreUnavailable("The event channel (Redis) is unreachable right now.") from exc

    async def subscribe(self, topics: list[str]) -> Subscription:
        return await self.local.subscribe(topics)

    async def control(self, payload: dict[str, Any]) -> None:
        try:
            await self.redis.publish(CONTROL_CHANNEL, json.dumps(payload))
        except REDIS_DOWN as exc:
            raise StoreUnavailable("The control channel (Redis) is unreachable right now.") from exc
