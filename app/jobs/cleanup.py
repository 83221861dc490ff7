"""The periodic sweep: expire archives whose time is up, recover jobs whose worker died, forget
old jobs and remove what dead jobs left. Safe when many processes sweep at once: every change is
conditional on the state it saw."""

from __future__ import annotations

import logging
import time

from apscheduler.schedulers.asyncio import AsyncIOScheduler

from app.archive_store import ArchiveStoreUnavailable
from app.jobs.models import Job, JobState
from app.jobs.service import JobService, Skip

log = logging.getLogger("jmbooru.cleanup")

MAX_ATTEMPTS = 2
RECORD_TTL = 7 * 24 * 3600  # finished jobs are forgotten after a week
# A job may sit "queued" this long before the sweep checks that the queue really holds it (the
# moment between saving a job and queueing it, or a worker taking it and claiming it, is not a loss).
QUEUED_GRACE = 30.0
LOST_WORKER_MESSAGE = "The worker running this job stopped responding twice; start the download again."


async def sweep(service: JobService) -> int:
    """One pass over every job; returns how many archives expired."""
    now = time.time()
    storage = service.storage
    jobs = await service.store.list_states(list(JobState))
    # Library jobs (no archive) are the user's files: never expired, forgotten like failed jobs.
    ready = [j for j in jobs if j.state == JobState.READY and j.file_name]
    # Archive store: a bucket that does not answer is not a missing archive (nothing expires for
    # that), and an archive whose time is up stays ready until its delete succeeds.
    try:
        missing = await service.archives.missing([j.file_name for j in ready])
    except ArchiveStoreUnavailable:
        missing = set()
    expired = 0
    for job in ready:
        if (job.expires_at is not None and job.expires_at <= now) or job.file_name in missing:
            try:
                await service.expire(job)
            except ArchiveStoreUnavailable:
                log.warning("archive not deleted yet (storage unreachable) job_id=%s", job.job_id)
                continue
            expired += 1
    for job in jobs:
        if job.state in (JobState.RUNNING, JobState.ZIPPING) and (job.lease_until or now) < now:
            await recover(service, job.job_id)
        elif job.state.final and (job.state != JobState.READY or not job.file_name) \
                and (job.finished_at or now) < now - RECORD_TTL:
            await service.store.delete(job.job_id)
    await requeue_lost(service, [j for j in jobs if j.state == JobState.QUEUED], now)
    active = {j.job_id for j in jobs if j.state.active}
    keep = {j.file_name for j in ready if j.file_name not in missing and (j.expires_at or now + 1) > now}
    await service.files_pool.run(storage.remove_leftovers, active, keep)
    return expired


async def recover(service: JobService, job_id: str) -> None:
    """A job whose worker stopped renewing its lease runs again, or fails after two tries."""
    now = time.time()
    current = await service.store.get(job_id)
    if current is None:
        return
    give_up = current.attempts >= MAX_ATTEMPTS

    def check(job: Job) -> None:
        if not job.state.active or job.state == JobState.QUEUED or (job.lease_until or 0) >= now:
            raise Skip  # renewed meanwhile, or another process recovered it first
        job.lease_until = None
        if give_up:
            job.state = JobState.FAILED
            job.error = job.message = LOST_WORKER_MESSAGE
            job.finished_at = now
        else:
            job.state = JobState.QUEUED
            job.done = job.bytes = 0
            job.message = "The worker running this job stopped; it was queued again."

    job = await service.emit(job_id, "failed" if give_up else "progress", check)
    if job is not None:
        log.warning("job recovered job_id=%s state=%s attempts=%d", job_id, job.state, job.attempts)
        if job.state == JobState.QUEUED:
            await service.queue.submit(job_id)


async def requeue_lost(service: JobService, queued: list[Job], now: float) -> None:
    """Queue again the jobs that are queued in the store but in no queue (a hand-off that failed,
    a queue that lost its data): running twice is harmless, a job only starts if still queued."""
    stale = {j.job_id for j in queued if (j.updated_at or now) < now - QUEUED_GRACE}
    if not stale:
        return
    lost = stale - await service.queue.holds(stale)
    for job_id in sorted(lost):
        log.warning("job queued again job_id=%s (it was in no queue)", job_id)
        await service.queue.submit(job_id)


def start_cleanup(service: JobService, interval_seconds: float) -> AsyncIOScheduler:
    scheduler = AsyncIOScheduler()

    async def run_sweep() -> None:
        try:
            expired = await sweep(service)
            if expired:
                log.info("cleanup expired=%d", expired)
        except Exception:
            log.exception("cleanup failed")

    scheduler.add_job(run_sweep, "interval", seconds=interval_seconds, id="sweep",
                      max_instances=1, coalesce=True)
    scheduler.start()
    return scheduler
