"""Following jobs: what a WebSocket receives, from the current state to the final frame.

A subscriber never depends on having been connected when something happened: it starts from
the job record (a snapshot, and the final frame if the job has ended), then takes live frames,
and re-reads the record when nothing arrives for a while.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import OrderedDict
from collections.abc import AsyncIterator

from app.jobs.events import Delivery, Frame, client_topic, encode, job_topic
from app.jobs.models import FINAL_EVENTS, Job, JobState
from app.jobs.service import JobService, Skip

RECHECK_SECONDS = 5.0


def snapshot(job: Job) -> Frame:
    frame = job.frame("snapshot")
    frame["status"] = str(job.state)
    if job.state == JobState.READY:
        frame.update(file_name=job.file_name, download_url=job.download_url)
    if job.kind == "album":
        frame["album_id"] = job.params.get("album_id")
    return frame


async def follow_job(service: JobService, job_id: str) -> AsyncIterator[Delivery]:
    """A snapshot, then live frames, ending with the final frame (at once if already final)."""
    sub = await service.hub.subscribe([job_topic(job_id)])
    try:
        job = await service.get(job_id)
        yield encode(snapshot(job))
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
                fresh = await service.store.get(job_id)
                if fresh is None:
                    return
                if fresh.state.final and fresh.seq > last and fresh.final_frame:
                    yield encode(fresh.final_frame)
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

async def follow_client(service: JobService, client_id: str) -> AsyncIterator[Delivery]:
    """Every frame of the client's jobs; first, what it missed while it was away."""
    sub = await service.hub.subscribe([client_topic(client_id)])
    try:
        last: dict[str, int] = {}
        for job in await service.store.jobs_for_client(client_id):
            if job.state.active:
                last[job.job_id] = job.seq
                yield encode(snapshot(job))
            elif job.final_frame and client_id not in job.notified:
                last[job.job_id] = job.seq
                yield encode(job.final_frame)
        while True:
            try:
                async with asyncio.timeout(3 * RECHECK_SECONDS):
                    frame, text = await sub.get()
            except TimeoutError:
                for job in await service.store.jobs_for_client(client_id):
                    if job.final_frame and job.seq > last.get(job.job_id, 0) and client_id not in job.notified:
                        last[job.job_id] = job.seq
                        yield encode(job.final_frame)
                continue
            seq, jid = frame.get("seq", 0), frame.get("job_id", "")
            if seq <= last.get(jid, 0) and frame.get("event") not in FINAL_EVENTS:
                continue
            last[jid] = max(seq, last.get(jid, 0))
            yield frame, text
    finally:
        await sub.close()

# (job_id, client_id) pairs this process already recorded: a client with many sockets then costs
# one store call per final frame, not one per socket.
_recorded: OrderedDict[tuple[str, str], None] = OrderedDict()


async def mark_notified(service: JobService, job_id: str, client_id: str) -> None:
    """Remember that the client got the final frame (once per client id, not per socket)."""
    if (job_id, client_id) in _recorded:
        return
    _recorded[(job_id, client_id)] = None
    while len(_recorded) > 10_000:
        _recorded.popitem(last=False)

    def mutate(job: Job) -> None:
        if client_id in job.notified:
            raise Skip  # another process recorded it already
        job.notified.append(client_id)

    with contextlib.suppress(Skip):
        await service.store.update(job_id, mutate)

