"""Scale-out mode: jobs in Redis, events over Redis pub/sub, the queue on taskiq-redis.

Every API process and every ``jmbooru worker`` shares one Redis and one data folder.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
import logging
import time
from collections.abc import Awaitable, Callable, Coroutine, Iterable
from typing import Any, ParamSpec, TypeVar

from redis.asyncio import Redis
from redis.exceptions import WatchError
from taskiq import AsyncBroker
from taskiq.kicker import AsyncKicker
from taskiq_redis import ListQueueBroker

from app.blocking import BlockingPool
from app.config import Settings
from app.jobs.events import Frame, LocalEventHub, Subscription
from app.jobs.models import Job, JobState
from app.jobs.queue import RunJob, finish_or_cancel
from app.jobs.runner import Runner
from app.jobs.service import JobService
from app.jobs.store import Mutation, add_client, joinable
from app.storage import Storage

log = logging.getLogger("jmbooru.redis")

P = ParamSpec("P")
T = TypeVar("T")

PREFIX = "jmbooru"
EVENTS_CHANNEL = f"{PREFIX}:events"
CONTROL_CHANNEL = f"{PREFIX}:control"
QUEUE_NAME = f"{PREFIX}:queue"
TASK_NAME = "jmbooru.run_job"


def _job_key(job_id: str) -> str:
    return f"{PREFIX}:job:{job_id}"


def _shielded(method: Callable[P, Awaitable[T]]) -> Callable[P, Coroutine[Any, Any, T]]:
    """Let a Redis command finish even if its caller is cancelled (a WebSocket closing).

    redis-py is not cancellation-safe inside WATCH/MULTI: a transaction cut off half-way leaves
    the connection waiting for a reply that never comes, and the caller hangs in its clean-up.
    """

    @functools.wraps(method)
    async def wrapper(*args: P.args, **kwargs: P.kwargs) -> T:
        return await asyncio.shield(method(*args, **kwargs))

    return wrapper


def connect(url: str) -> Redis:
    return Redis.from_url(url, decode_responses=True, health_check_interval=30)


class RedisJobStore:
    """Each job is one JSON value; changes are optimistic transactions (WATCH/MULTI/EXEC)."""

    def __init__(self, redis: Redis) -> None:
        self.redis = redis

    async def open(self) -> None:
        await self.redis.ping()

    async def close(self) -> None:
        await self.redis.aclose()

    @_shielded
    async def get(self, job_id: str) -> Job | None:
        raw = await self.redis.get(_job_key(job_id))
        return Job.from_record(json.loads(raw)) if raw else None

    @_shielded
    async def get_by_file_name(self, file_name: str) -> Job | None:
        job_id = await self.redis.get(f"{PREFIX}:file:{file_name}")
        return await self.get(str(job_id)) if job_id else None

    @_shielded
    async def create_or_join(self, job: Job, client_id: str | None) -> tuple[Job, bool]:
        dedupe = f"{PREFIX}:key:{job.key}"
        while True:
            async with self.redis.pipeline(transaction=True) as pipe:
                try:
                    await pipe.watch(dedupe)
                    found = await pipe.get(dedupe)
                    existing_id = str(found) if found else ""
                    if existing_id:
                        await pipe.watch(_job_key(existing_id))
                        raw = await pipe.get(_job_key(existing_id))
                        existing = Job.from_record(json.loads(raw)) if raw else None
                        if existing is not None and joinable(existing, time.time()):
                            add_client(existing, client_id)
                            existing.updated_at = time.time()
                            pipe.multi()
                            self._write(pipe, existing)
                            await pipe.execute()
                            return existing, False
                    add_client(job, client_id)
                    pipe.multi()
                    pipe.set(dedupe, job.job_id)
                    self._write(pipe, job)
                    pipe.zadd(f"{PREFIX}:jobs", {job.job_id: job.created_at})
                    await pipe.execute()
                    return job, True
                except WatchError:
                    continue

    @staticmethod
    def _write(pipe: Any, job: Job) -> None:
        pipe.set(_job_key(job.job_id), json.dumps(job.to_record()))
        for client_id in job.client_ids:
            pipe.sadd(f"{PREFIX}:client:{client_id}", job.job_id)
        if job.file_name:
            pipe.set(f"{PREFIX}:file:{job.file_name}", job.job_id)

    @_shielded
    async def update(self, job_id: str, mutate: Mutation) -> Job | None:
        key = _job_key(job_id)
        while True:
            async with self.redis.pipeline(transaction=True) as pipe:
                try:
                    await pipe.watch(key)
                    raw = await pipe.get(key)
                    if not raw:
                        return None
                    job = Job.from_record(json.loads(raw))
                    mutate(job)
                    job.updated_at = time.time()
                    pipe.multi()
                    self._write(pipe, job)
                    await pipe.execute()
                    return job
                except WatchError:
                    continue

    async def _all(self) -> list[Job]:
        ids = [str(i) for i in await self.redis.zrange(f"{PREFIX}:jobs", 0, -1)]
        jobs: list[Job] = []
        for start in range(0, len(ids), 200):
            chunk = ids[start:start + 200]
            for raw in await self.redis.mget([_job_key(i) for i in chunk]):
                if raw:
                    jobs.append(Job.from_record(json.loads(raw)))
        return jobs

    @_shielded
    async def list_states(self, states: Iterable[JobState]) -> list[Job]:
        wanted = set(states)
        return [job for job in await self._all() if job.state in wanted]

    @_shielded
    async def jobs_for_client(self, client_id: str) -> list[Job]:
        ids = [str(i) for i in await self.redis.smembers(f"{PREFIX}:client:{client_id}")]
        jobs = [job for job in [await self.get(i) for i in ids] if job is not None]
        return sorted(jobs, key=lambda j: j.created_at)

    @_shielded
    async def delete(self, job_id: str) -> None:
        job = await self.get(job_id)
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.delete(_job_key(job_id))
            pipe.zrem(f"{PREFIX}:jobs", job_id)
            if job is not None:
                for client_id in job.client_ids:
                    pipe.srem(f"{PREFIX}:client:{client_id}", job_id)
                if job.file_name:
                    pipe.delete(f"{PREFIX}:file:{job.file_name}")
            await pipe.execute()


class RedisEventHub:
    """Frames go to one Redis channel; every process hears all of them and delivers locally.

    One subscription per process (not one per socket) keeps Redis connections constant, and
    it is active before any socket subscribes, so no frame published later can be missed.
    """

    def __init__(self, redis: Redis) -> None:
        self.redis = redis
        self.local = LocalEventHub()
        self._reader: asyncio.Task[None] | None = None
        self._pubsub: Any = None
        self.on_control: list[Any] = []

    async def start(self) -> None:
        self._pubsub = self.redis.pubsub(ignore_subscribe_messages=True)
        await self._pubsub.subscribe(EVENTS_CHANNEL, CONTROL_CHANNEL)
        self._reader = asyncio.create_task(self._read(), name="redis-events")

    async def _read(self) -> None:
        while True:
            try:
                message = await self._pubsub.get_message(timeout=1.0)
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("redis pub/sub read failed; retrying")
                await asyncio.sleep(1.0)
                continue
            if message is None or message.get("type") != "message":
                continue
            payload = json.loads(message["data"])
            if message["channel"] == CONTROL_CHANNEL:
                for handler in self.on_control:
                    await handler(payload)
            else:
                await self.local.publish(payload["topics"], payload["frame"])

    async def stop(self) -> None:
        if self._reader is not None:
            self._reader.cancel()
            await asyncio.gather(self._reader, return_exceptions=True)
        if self._pubsub is not None:
            with contextlib.suppress(Exception):
                await self._pubsub.aclose()
        await self.local.stop()

    async def publish(self, topics: list[str], frame: Frame) -> None:
        await self.redis.publish(EVENTS_CHANNEL, json.dumps({"topics": topics, "frame": frame}))

    async def subscribe(self, topics: list[str]) -> Subscription:
        return await self.local.subscribe(topics)

    async def control(self, payload: dict[str, Any]) -> None:
        await self.redis.publish(CONTROL_CHANNEL, json.dumps(payload))


def make_broker(settings: Settings) -> ListQueueBroker:
    # redis-py 8 gives every socket a 5 s read timeout; taskiq-redis blocks in BRPOP with no
    # timeout and only survives ConnectionError, so an idle worker's listener would die.
    return ListQueueBroker(settings.redis_url, queue_name=QUEUE_NAME, socket_timeout=None)


class TaskiqJobQueue:
    """Jobs go to taskiq; ``jmbooru worker`` processes run them, at most N at once each.

    In an API process ``start`` only connects the broker. In a worker, taskiq calls
    ``execute`` for each message and cancellation requests arrive on the control channel.
    """

    def __init__(self, broker: AsyncBroker, hub: RedisEventHub, *, is_worker: bool) -> None:
        self.broker = broker
        self.hub = hub
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


def build_redis_service(settings: Settings, storage: Storage, runners: dict[str, Runner],
                        files_pool: BlockingPool, *, broker: AsyncBroker | None = None,
                        is_worker: bool = False) -> JobService:
    redis = connect(settings.redis_url)
    hub = RedisEventHub(redis)
    queue = TaskiqJobQueue(broker or make_broker(settings), hub, is_worker=is_worker)
    return JobService(settings, storage, RedisJobStore(redis), hub, queue, runners, files_pool,
                      reconcile_on_start=False)
