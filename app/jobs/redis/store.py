"""The job store on Redis: each job is one JSON value; changes are optimistic transactions."""

from __future__ import annotations

import asyncio
import functools
import json
import logging
import time
from collections.abc import Awaitable, Callable, Coroutine, Iterable
from typing import Any, ParamSpec, TypeVar

from redis.asyncio import Redis
from redis.asyncio.retry import Retry
from redis.backoff import ExponentialBackoff
from redis.exceptions import BusyLoadingError, WatchError
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from app.blocking import mark_retrieved
from app.errors import StoreUnavailable
from app.jobs.listing import JobQuery, order_key
from app.jobs.models import Job, JobState
from app.jobs.store import Mutation, add_client, joinable

log = logging.getLogger("jmbooru.redis")

P = ParamSpec("P")
T = TypeVar("T")

PREFIX = "jmbooru"
# What a Redis that restarted, is loading its data, or is unreachable raises.
REDIS_DOWN = (RedisConnectionError, RedisTimeoutError, BusyLoadingError, ConnectionError, OSError)
QUEUED_KEY = f"{PREFIX}:queued"  # queued job ids scored by created_at: queue positions without a scan
PAGE_BATCH = 100
DOWN_MESSAGE = "The job store (Redis) is unreachable right now; try again in a moment."


def _job_key(job_id: str) -> str:
    return f"{PREFIX}:job:{job_id}"


def connect(url: str) -> Redis:
    # A stale connection (Redis restarted) is replaced and the command retried, quickly: while
    # Redis is really down, callers get their 503 in well under a second.
    return Redis.from_url(
        url, decode_responses=True, health_check_interval=30, socket_connect_timeout=2,
        retry=Retry(ExponentialBackoff(cap=0.2, base=0.02), 2),
        retry_on_error=[RedisConnectionError, RedisTimeoutError, BusyLoadingError],
    )


class _Outage:
    """One warning line when Redis goes away and one when it is back, not one per failed call
    (every socket, sweep and heartbeat of a process calls it)."""

    def __init__(self) -> None:
        self.since: float | None = None

    def failed(self, operation: str, exc: BaseException) -> None:
        if self.since is None:
            self.since = time.monotonic()
            log.warning("redis unavailable op=%s error=%s", operation, type(exc).__name__)
        else:
            log.debug("redis still unavailable op=%s error=%s", operation, type(exc).__name__)

    def succeeded(self) -> None:
        if self.since is not None:
            log.warning("redis reachable again after %.1f s", time.monotonic() - self.since)
            self.since = None


_OUTAGE = _Outage()


def guarded(method: Callable[P, Awaitable[T]]) -> Callable[P, Coroutine[Any, Any, T]]:
    """Run a store call to the end even if its caller is cancelled, and turn Redis being away
    into ``StoreUnavailable``.

    redis-py is not cancellation-safe inside WATCH/MULTI: a transaction cut off half-way leaves
    the connection waiting for a reply that never comes. A transaction whose connection broke
    (Redis restarted) is tried again once on a fresh connection: the mutations have no side effects.
    """

    @functools.wraps(method)
    async def wrapper(*args: P.args, **kwargs: P.kwargs) -> T:
        for attempt in range(3):
            try:
                # Its own task, shielded: a cancelled caller leaves the call running to its end,
                # and the call's error (Redis away) is read even when nobody awaits it any more.
                call = asyncio.ensure_future(method(*args, **kwargs))
                call.add_done_callback(mark_retrieved)
                result = await asyncio.shield(call)
            except REDIS_DOWN as exc:
                if attempt == 2:
                    _OUTAGE.failed(method.__name__, exc)
                    raise StoreUnavailable(DOWN_MESSAGE) from exc
                await asyncio.sleep(0.05 * (attempt + 1))
            else:
                _OUTAGE.succeeded()
                return result
        raise AssertionError("unreachable")

    return wrapper


class RedisJobStore:
    """Each job is one JSON value; changes are optimistic transactions (WATCH/MULTI/EXEC)."""

    def __init__(self, redis: Redis) -> None:
        self.redis = redis

    async def open(self) -> None:
        try:
            await self.redis.ping()
        except REDIS_DOWN as exc:  # keep starting: every call retries, and the sweep catches up
            log.warning("redis is not reachable yet (%s); job endpoints answer 503 until it is",
                        type(exc).__name__)

    async def close(self) -> None:
        await self.redis.aclose()

    @guarded
    async def get(self, job_id: str) -> Job | None:
        raw = await self.redis.get(_job_key(job_id))
        return _decode(raw)

    @guarded
    async def is_notified(self, job_id: str, client_id: str) -> bool:
        job = _decode(await self.redis.get(_job_key(job_id)))
        return job is not None and client_id in job.notified

    @guarded
    async def get_by_file_name(self, file_name: str) -> Job | None:
        job_id = await self.redis.get(f"{PREFIX}:file:{file_name}")
        return _decode(await self.redis.get(_job_key(str(job_id)))) if job_id else None

    @guarded
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
                        existing = _decode(await pipe.get(_job_key(existing_id)))
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
                    await pipe.execute()
                    return job, True
                except WatchError:
                    continue

    @staticmethod
    def _write(pipe: Any, job: Job) -> None:
        pipe.set(_job_key(job.job_id), json.dumps(job.to_record()))
        pipe.zadd(f"{PREFIX}:jobs", {job.job_id: job.created_at})
        if job.state == JobState.QUEUED:
            pipe.zadd(QUEUED_KEY, {job.job_id: job.created_at})
        else:
            pipe.zrem(QUEUED_KEY, job.job_id)
        for client_id in job.client_ids:
            pipe.sadd(f"{PREFIX}:client:{client_id}", job.job_id)
        if job.file_name:
            pipe.set(f"{PREFIX}:file:{job.file_name}", job.job_id)

    @guarded
    async def update(self, job_id: str, mutate: Mutation, *, durable: bool = True) -> Job | None:
        key = _job_key(job_id)
        while True:
            async with self.redis.pipeline(transaction=True) as pipe:
                try:
                    await pipe.watch(key)
                    job = _decode(await pipe.get(key))
                    if job is None:
                        return None
                    mutate(job)
                    job.updated_at = time.time()
                    pipe.multi()
                    self._write(pipe, job)
                    await pipe.execute()
                    return job
                except WatchError:
                    continue

    @guarded
    async def put(self, job: Job) -> None:
        async with self.redis.pipeline(transaction=True) as pipe:
            self._write(pipe, job)
            await pipe.execute()

    async def _all(self) -> list[Job]:
        ids = [str(i) for i in await self.redis.zrange(f"{PREFIX}:jobs", 0, -1)]
        jobs: list[Job] = []
        for start in range(0, len(ids), 200):
            chunk = ids[start:start + 200]
            for raw in await self.redis.mget([_job_key(i) for i in chunk]):
                job = _decode(raw)
                if job is not None:
                    jobs.append(job)
        return jobs

    @guarded
    async def list_states(self, states: Iterable[JobState]) -> list[Job]:
        wanted = set(states)
        return [job for job in await self._all() if job.state in wanted]

    @guarded
    async def jobs_for_client(self, client_id: str) -> list[Job]:
        ids = [str(i) for i in await self.redis.smembers(f"{PREFIX}:client:{client_id}")]
        raws = await self.redis.mget([_job_key(i) for i in ids]) if ids else []
        jobs = [job for job in map(_decode, raws) if job is not None]
        return sorted(jobs, key=lambda j: j.created_at)

    async def _load(self, ids: list[str]) -> list[Job]:
        raws = await self.redis.mget([_job_key(i) for i in ids]) if ids else []
        return [job for job in map(_decode, raws) if job is not None]

    @guarded
    async def page(self, query: JobQuery) -> list[Job]:
        found: dict[str, Job] = {}
        if query.client_id is not None:  # a client's own set is small: read it whole
            ids = [str(i) for i in await self.redis.smembers(f"{PREFIX}:client:{query.client_id}")]
            found = {job.job_id: job for job in await self._load(ids) if query.matches(job)}
        else:
            # Walk the time index from the cursor down until a page (and one more) matches.
            high: float | str = "+inf" if query.before is None else query.before.created_at
            offset = 0
            while len(found) <= query.limit:
                batch = await self.redis.zrevrangebyscore(f"{PREFIX}:jobs", high, "-inf", start=offset,
                                                          num=max(PAGE_BATCH, query.limit + 1))
                if not batch:
                    break
                offset += len(batch)
                for job in await self._load([str(i) for i in batch]):
                    if query.matches(job):
                        found[job.job_id] = job
        return sorted(found.values(), key=order_key, reverse=True)[:query.limit + 1]

    @guarded
    async def queued_order(self) -> list[str]:
        return [str(i) for i in await self.redis.zrange(QUEUED_KEY, 0, -1)]

    @guarded
    async def delete(self, job_id: str) -> None:
        job = _decode(await self.redis.get(_job_key(job_id)))
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.delete(_job_key(job_id))
            pipe.zrem(f"{PREFIX}:jobs", job_id)
            pipe.zrem(QUEUED_KEY, job_id)
            if job is not None:
                for client_id in job.client_ids:
                    pipe.srem(f"{PREFIX}:client:{client_id}", job_id)
                if job.file_name:
                    pipe.delete(f"{PREFIX}:file:{job.file_name}")
            await pipe.execute()


def _decode(raw: Any) -> Job | None:
    """A job record, or None for a missing or unreadable one (never a crash on bad data)."""
    if not raw:
        return None
    try:
        return Job.from_record(json.loads(raw))
    except (ValueError, TypeError, KeyError) as exc:
        log.warning("unreadable job record skipped: %s", type(exc).__name__)
        return None
