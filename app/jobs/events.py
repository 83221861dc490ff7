"""The event hub: runners publish frames, WebSocket handlers subscribe to topics.

Topics are ``job:<job_id>`` and ``client:<client_id>``. A frame published while nobody
listens is not lost: the job record keeps its counters and its final frame, which every
new subscriber receives first (see ``app.jobs.service.JobService.follow``).
"""

from __future__ import annotations

import asyncio
import json
from typing import Any, Protocol

Frame = dict[str, Any]
# A frame and its JSON text: encoded once per publish, not once per socket.
Delivery = tuple[Frame, str]


def encode(frame: Frame) -> Delivery:
    return frame, json.dumps(frame, ensure_ascii=False, separators=(",", ":"))

# A subscriber this far behind only loses progress frames; final frames always get through.
_MAX_BACKLOG = 512


def job_topic(job_id: str) -> str:
    return f"job:{job_id}"


def client_topic(client_id: str) -> str:
    return f"client:{client_id}"


class Subscription(Protocol):
    async def get(self) -> Delivery: ...
    async def close(self) -> None: ...


class EventHub(Protocol):
    async def start(self) -> None: ...
    async def stop(self) -> None: ...
    async def publish(self, topics: list[str], frame: Frame) -> None: ...
    async def subscribe(self, topics: list[str]) -> Subscription: ...


class _LocalSubscription:
    """Frames waiting for one subscriber: a plain list and one future while it waits (an idle
    socket's subscription costs a few hundred bytes, not an ``asyncio.Queue``'s three deques)."""

    __slots__ = ("hub", "topics", "_frames", "_waiter")

    def __init__(self, hub: LocalEventHub, topics: list[str]) -> None:
        self.hub = hub
        self.topics = topics
        self._frames: list[Delivery] = []
        self._waiter: asyncio.Future[None] | None = None

    def offer(self, delivery: Delivery) -> None:
        if delivery[0].get("event") == "progress" and len(self._frames) >= _MAX_BACKLOG:
            return
        self._frames.append(delivery)
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_result(None)

    async def get(self) -> Delivery:
        while not self._frames:
            self._waiter = asyncio.get_running_loop().create_future()
            try:
                await self._waiter
            finally:
                self._waiter = None
        return self._frames.pop(0)

    async def close(self) -> None:
        self.hub._remove(self)


class LocalEventHub:
    """In-process delivery for the embedded mode."""

    def __init__(self) -> None:
        self._subs: dict[str, set[_LocalSubscription]] = {}

    async def start(self) -> None:
        return None

    async def stop(self) -> None:
        self._subs.clear()

    async def publish(self, topics: list[str], frame: Frame) -> None:
        delivery: Delivery | None = None
        for topic in topics:
            for sub in self._subs.get(topic, ()):
                delivery = delivery or encode(frame)
                sub.offer(delivery)

    async def subscribe(self, topics: list[str]) -> Subscription:
        sub = _LocalSubscription(self, topics)
        for topic in topics:
            self._subs.setdefault(topic, set()).add(sub)
        return sub

    def _remove(self, sub: _LocalSubscription) -> None:
        for topic in sub.topics:
            subs = self._subs.get(topic)
            if subs is not None:
                subs.discard(sub)
                if not subs:
                    del self._subs[topic]
