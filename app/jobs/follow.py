"""Following jobs: what a WebSocket receives, from the current state to the final frame.

A subscriber never depends on having been connected when something happened: it starts from
the job record (a snapshot, and the final frame if the job has ended), then takes live frames,
and re-reads the record when nothing arrives for a while.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, TypeVar

from app.errors import NotFound, StoreUnavailable
from app.jobs.events import Delivery, EventHub, Frame, client_topic, encode, job_topic
from app.jobs.frames import FINAL_EVENTS, final_event, job_frame, snapshot_frame, vanished_frame
from app.jobs.models import Job, Skip

if TYPE_CHECKING:  # the service hands its store in (Feed); this module only names its type
    from app.jobs.store import JobStore

log = logging.getLogger("jmbooru.ws")

RECHECK_SECONDS = 5.0
T = TypeVar("T")


async def patiently(read: Callable[[], Awaitable[T]]) -> T:
    """A store read that waits out the store being away (Redis restarting) instead of failing.

    A follower has nothing better to do than wait: its socket stays open, and once the store is
    back the read answers and the final frame goes out. The socket closing ends the wait.
    """
    delay = 0.25
    warned = False
    while True:
        try:
            return await read()
        except StoreUnavailable:
            if not warned:
                log.warning("websocket follower waiting for the job store to come back")
                warned = True
            await asyncio.sleep(delay)
            delay = min(RECHECK_SECONDS / 5, delay * 2)


@dataclass(frozen=True)
class Feed:
    """What following needs of the job service: its event hub and its job records (the service
    hands these to this module; callers follow through ``JobService.follow_job`` and friends)."""

    hub: EventHub
    store: JobStore

    async def get(self, job_id: str) -> Job:
        job = await self.store.get(job_id)
        if job is None:
            raise NotFound("There is no job with that id (it may have been cleaned up).")
        return job


async def follow_job(feed: Feed, job_id: str) -> AsyncIterator[Delivery]:
    """A snapshot, then live frames, ending with the final frame (at once if already final)."""
    sub = await feed.hub.subscribe([job_topic(job_id)])
    try:
        job = await patiently(lambda: feed.get(job_id))
        yield encode(snapshot_frame(job))
        if job.state.final:
            if job.final_frame:
                yield encode(job.final_frame)
            return
        last = job.seq
        while True:
            try:
                async with asyncio.timeout(RECHECK_SECONDS):
                    frame, text = await sub.get()
            except TimeoutError:
                # A frame lost on the way (a Redis hiccup) must not leave the socket waiting forever.
                fresh = await patiently(lambda: feed.store.get(job_id))
                if fresh is None:  # the record vanished (the store lost it): say so, never close silently
                    yield encode(vanished_frame(job_id, last + 1))
                    return
                if fresh.state.final:  # it ended and its final frame never reached us
                    yield encode(fresh.final_frame or job_frame(fresh, final_event(fresh.state)))
                    return
                continue
            if frame.get("seq", 0) <= last:
                continue
            last = frame["seq"]
            yield frame, text
            if frame.get("event") in FINAL_EVENTS:
                return
    finally:
        await sub.close()

async def follow_client(feed: Feed, client_id: str, *, progress: bool = False,
                        replay_grace: float = 3.0) -> AsyncIterator[Delivery]:
    """The frames a notifications socket sends, in either of its two modes."""
    frames = _follow_client_progress(feed, client_id) if progress else \
        _ClientFinals(feed, client_id, replay_grace).frames()
    async with contextlib.aclosing(frames):
        async for delivery in frames:
            yield delivery


async def _follow_client_progress(feed: Feed, client_id: str) -> AsyncGenerator[Delivery, None]:
    """``?progress=1``: snapshots of running jobs, missed finals, then every live frame."""
    sub = await feed.hub.subscribe([client_topic(client_id)])
    try:
        last: dict[str, int] = {}
        sent: set[str] = set()  # jobs whose final this socket already sent
        for job in await patiently(lambda: feed.store.jobs_for_client(client_id)):
            if job.state.active:
                last[job.job_id] = job.seq
                yield encode(snapshot_frame(job))
            elif job.final_frame and client_id not in job.notified:
                last[job.job_id] = job.seq
                sent.add(job.job_id)
                yield encode(job.final_frame)
        while True:
            try:
                async with asyncio.timeout(3 * RECHECK_SECONDS):
                    frame, text = await sub.get()
            except TimeoutError:
                for job in await patiently(lambda: feed.store.jobs_for_client(client_id)):
                    if (job.final_frame and job.job_id not in sent and job.seq > last.get(job.job_id, 0)
                            and client_id not in job.notified):
                        last[job.job_id] = job.seq
                        sent.add(job.job_id)
                        yield encode(job.final_frame)
                continue
            seq, jid = frame.get("seq", 0), str(frame.get("job_id", ""))
            if frame.get("event") in FINAL_EVENTS:
                if jid in sent and seq <= last.get(jid, 0) and not frame.get("joined"):
                    continue  # the same final again (a replay raced the live frame)
                sent.add(jid)
            elif seq <= last.get(jid, 0):
                continue
            last[jid] = max(seq, last.get(jid, 0))
            yield frame, text
    finally:
        await sub.close()


class _ClientFinals:
    """The default mode: only final frames, and a job's final before the finals of older jobs.

    Real clients (the WatchJM app, the seed's tests) open the socket, POST at once and read ONE
    frame, which must be the final of the job they just started. So finals of jobs the client
    asked for before this socket opened ("old" jobs: missed while it was away, or ending now)
    wait ``grace`` seconds, and then until every job it asked for meanwhile has sent its final.
    A job asked for shortly before the socket opened counts as new: the POST may win the race.
    """

    def __init__(self, feed: Feed, client_id: str, grace: float) -> None:
        self.feed = feed
        self.client_id = client_id
        self.grace = grace
        self.opened = time.time()
        self.sent: set[str] = set()  # finals this socket sent
        self.held: dict[str, Frame] = {}  # finals of old jobs, in the order they ended
        self.waiting: set[str] = set()  # new jobs whose final this socket has not sent yet
        self.old: set[str] = set()

    def is_new(self, job: Job) -> bool:
        return job.client_joined_at.get(self.client_id, 0.0) >= self.opened - self.grace

    async def frames(self) -> AsyncGenerator[Delivery, None]:
        sub = await self.feed.hub.subscribe([client_topic(self.client_id)])
        try:
            jobs = await patiently(lambda: self.feed.store.jobs_for_client(self.client_id))
            self.old = {job.job_id for job in jobs if not self.is_new(job)}
            for job in sorted(jobs, key=lambda j: j.finished_at or j.created_at):
                for delivery in self._consider(job):
                    yield delivery
            release_at = self.opened + self.grace
            released = False
            while True:
                if not released and time.time() >= release_at:
                    released = True
                    for delivery in await self._recheck():  # jobs asked for again meanwhile
                        yield delivery
                if released and not self.waiting:
                    for delivery in self._release():
                        yield delivery
                wait = RECHECK_SECONDS if released else max(0.0, release_at - time.time())
                try:
                    async with asyncio.timeout(wait):
                        frame, text = await sub.get()
                except TimeoutError:
                    for delivery in await self._recheck():
                        yield delivery
                    continue
                jid = str(frame.get("job_id", ""))
                if frame.get("event") not in FINAL_EVENTS:
                    if jid not in self.old:
                        self.waiting.add(jid)  # a job started after the socket opened
                    continue
                if jid in self.sent and not frame.get("joined"):
                    continue
                if jid in self.old and not await self._asked_again(jid):
                    self.held[jid] = frame
                    continue
                self.waiting.discard(jid)
                self.sent.add(jid)
                yield frame, text
        finally:
            await sub.close()

    async def _recheck(self) -> list[Delivery]:
        """Re-read the client's jobs: finals lost on the way, jobs asked for again, jobs forgotten."""
        jobs = await patiently(lambda: self.feed.store.jobs_for_client(self.client_id))
        self.waiting &= {job.job_id for job in jobs}
        return [delivery for job in jobs for delivery in self._consider(job)]

    def _consider(self, job: Job) -> list[Delivery]:
        """Place a job read from the store: wait for it, send its final now, or hold it."""
        new = self.is_new(job)
        if new:
            self.old.discard(job.job_id)
        if job.state.active:
            if new:
                self.waiting.add(job.job_id)
            return []
        self.waiting.discard(job.job_id)
        if not job.final_frame or job.job_id in self.sent or self.client_id in job.notified:
            return []
        if new:
            self.sent.add(job.job_id)
            return [encode(job.final_frame)]
        self.held.setdefault(job.job_id, job.final_frame)
        return []

    async def _asked_again(self, job_id: str) -> bool:
        job = await patiently(lambda: self.feed.store.get(job_id))
        if job is None or not self.is_new(job):
            return False
        self.old.discard(job_id)
        return True

    def _release(self) -> list[Delivery]:
        out = [encode(frame) for jid, frame in self.held.items() if jid not in self.sent]
        self.sent.update(self.held)
        self.held.clear()
        return out


async def mark_notified(feed: Feed, job_id: str, client_id: str) -> None:
    """Remember that the client got the final frame (once per client id, not per socket).

    A job already marked costs a look-up and no change, so a client with many sockets stays cheap:
    a change (a copy of the record, a task run to its end, the job's lock) for each of a burst's
    sockets made the last frame of a 1,000-socket burst twice as late.
    """

    def mutate(job: Job) -> None:
        if client_id in job.notified:
            raise Skip  # another socket or process recorded it already
        job.notified.append(client_id)

    try:
        if await feed.store.is_notified(job_id, client_id):
            return  # another socket of this client, or another process, recorded it already
        # Not a final state: in memory at once (the next socket, opened a moment later, must see it)
        # and on disk behind it. Lost in a crash, it only costs the client this final once more.
        await feed.store.update(job_id, mutate, durable=False)
    except Skip:
        pass
    except StoreUnavailable:
        # The frame is out; unrecorded, it is only sent again to this client's next socket.
        log.warning("final frame sent but not recorded job_id=%s (job store away)", job_id)
