"""The job engine: start, join, run, cancel and expire jobs, and publish their events."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import shutil
import socket
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

from app import logs, metrics
from app.archive_store import ArchiveStore, ArchiveStoreUnavailable, LocalArchiveStore
from app.archives import ArchiveContent, archive_file_name, archive_format, build_archive
from app.blocking import BlockingPool
from app.config import Settings
from app.errors import AppError, DiskFull, NotFound, StoreUnavailable, Unprocessable, is_disk_full
from app.jobs.events import Delivery, EventHub, Frame, client_topic, job_topic
from app.jobs.listing import JobQuery, order_key, page_and_cursor, waiting_message
from app.jobs.models import FINAL_EVENTS, Job, JobState, Skip, new_job_id
from app.jobs.progress import Counters, ProgressTracker
from app.jobs.queue import JobQueue
from app.jobs.runner import RunContext, Runner, RunOutput
from app.jobs.specs import JobSpec
from app.jobs.store import JobStore
from app.outputs.library import Library
from app.outputs.scans import ScanTriggers
from app.storage import Storage

log = logging.getLogger("jmbooru.jobs")
sweep_log = logging.getLogger("jmbooru.cleanup")

WORKER_ID = f"{socket.gethostname()}:{os.getpid()}"
RESTART_MESSAGE = "The server restarted while this job was running; start the download again."
SHUTDOWN_MESSAGE = "The server shut down while this job was running; start the download again."
LOST_MESSAGE = (
    "The job store lost this job while it ran (Redis restarted without its data); start the download again."
)
QUEUE_FAILED_MESSAGE = "The download could not be queued; nothing was started. Try again in a moment."
CANCELLED_MESSAGE = "The download was cancelled."
LIBRARY_OFF = "This server has no reader library: set JMBOORU_LIBRARY_DIR and restart jmbooru."
MAX_ATTEMPTS = 2
RECORD_TTL = 7 * 24 * 3600  # finished jobs are forgotten after a week
# A job may sit "queued" this long before the sweep checks that the queue really holds it (the
# moment between saving a job and queueing it, or a worker taking it and claiming it, is not a loss).
QUEUED_GRACE = 30.0
LOST_WORKER_MESSAGE = "The worker running this job stopped responding twice; start the download again."
# How long a finished download waits for the job store to come back before giving up on it.
FINISH_PATIENCE_SECONDS = 120.0


class JobService:
    def __init__(
        self,
        settings: Settings,
        storage: Storage,
        store: JobStore,
        hub: EventHub,
        queue: JobQueue,
        runners: dict[str, Runner],
        files_pool: BlockingPool,
        *,
        reconcile_on_start: bool = True,
        archives: ArchiveStore | None = None,
    ) -> None:
        self.settings = settings
        self._storage = storage
        # Where finished archives live (a folder, or a bucket shared by several hosts).
        self._archives: ArchiveStore = archives or LocalArchiveStore(storage, files_pool)
        # Its parts (store, hub, queue, storage, pools) are private: callers use the verbs below.
        self._store = store
        self._hub = hub
        self._queue = queue
        self._runners = runners
        self._files_pool = files_pool
        self._stopping = False
        self.reconcile_on_start = reconcile_on_start
        # The reader library and its scan triggers, when JMBOORU_LIBRARY_DIR is set (set by the Engine).
        self.library: Library | None = None
        self.scans: ScanTriggers | None = None
        self._background: set[asyncio.Task[Any]] = set()

    # --- life cycle -------------------------------------------------------------------------

    async def start(self) -> None:
        await self._store.open()
        await self._hub.start()
        if self.reconcile_on_start:
            await self.reconcile_after_restart()
        await self._queue.start(self.run)

    async def stop(self) -> None:
        """Let running jobs finish within the grace period, cancel the rest, close everything."""
        self._stopping = True
        await self._queue.stop(self.settings.shutdown_grace_seconds)
        await self._hub.stop()
        await self._store.close()

    async def reconcile_after_restart(self) -> None:
        """Jobs that were running when the process died fail; queued ones run again."""
        for job in await self._store.list_states([JobState.RUNNING, JobState.ZIPPING]):
            await self._files_pool.run(self._storage.remove_work, job.job_id)
            await self.finish(job.job_id, JobState.FAILED, "failed", error=RESTART_MESSAGE)
        queued = await self._store.list_states([JobState.QUEUED])
        ready = {j.file_name for j in await self._store.list_states([JobState.READY])}
        await self._files_pool.run(self._storage.remove_leftovers, {j.job_id for j in queued}, ready)
        for job in sorted(queued, key=order_key):  # in the order they were queued: positions stay true
            await self._queue.submit(job.job_id)

    # --- starting and reading ---------------------------------------------------------------

    async def submit(self, spec: JobSpec, client_id: str | None) -> tuple[Job, bool]:
        """Start a job, or join the one already downloading (or recently done) the same thing."""
        candidate = Job.for_spec(spec, new_job_id(), message="Waiting for a free download slot.",
                                 request_id=logs.REQUEST_ID.get())
        job, created = await self._store.create_or_join(candidate, client_id)
        if created:
            log.info("job queued job_id=%s kind=%s key=%s client_id=%s", job.job_id, job.kind, job.key, client_id)
            try:
                await self._queue.submit(job.job_id)
            except Exception as exc:
                # Stored but not queued: end it, so that nobody joins a job that will never run.
                # (If even that fails, the sweep finds it queued with no queue entry and retries.)
                log.error("job not queued job_id=%s error=%s", job.job_id, type(exc).__name__)
                with contextlib.suppress(Exception):
                    await self.finish(job.job_id, JobState.FAILED, "failed", error=QUEUE_FAILED_MESSAGE)
                raise StoreUnavailable(QUEUE_FAILED_MESSAGE) from exc
        else:
            log.info("job joined job_id=%s client_id=%s state=%s", job.job_id, client_id, job.state)
            if client_id and job.state.final and job.final_frame:
                # A fresh archive is reused: the client that asked is told at once, even on a socket
                # that heard this final before ("joined" tells a socket it is an answer, not a repeat).
                await self._hub.publish([client_topic(client_id)], {**job.final_frame, "joined": True})
        return job, created

    async def get(self, job_id: str) -> Job:
        job = await self._store.get(job_id)
        if job is None:
            raise NotFound("There is no job with that id (it may have been cleaned up).")
        return job

    async def page(self, query: JobQuery) -> tuple[list[dict[str, Any]], str | None]:
        """One page of the shared job list, as ``GET /v1/jobs/{id}`` shows each job, and the next cursor."""
        page, cursor = page_and_cursor(await self._store.page(query), query.limit)
        return await self.describe(page), cursor

    async def describe(self, jobs: list[Job]) -> list[dict[str, Any]]:
        """Jobs as clients see them; a queued one also says where it stands in the queue."""
        positions: dict[str, int] = {}
        if any(job.state == JobState.QUEUED for job in jobs):
            # Every queued job waits in one line (one process's queue, or the shared Redis queue
            # that every worker takes from), in the order it was queued.
            positions = {job_id: n for n, job_id in enumerate(await self._store.queued_order(), start=1)}
        shown = []
        for job in jobs:
            view = job.public()
            position = positions.get(job.job_id) if job.state == JobState.QUEUED else None
            if position is not None:
                view.update(position=position, message=waiting_message(position))
            shown.append(view)
        return shown

    async def emit(self, job_id: str, event: str, mutate: Callable[[Job], None] | None = None,
                   **extra: Any) -> Job | None:
        """Apply ``mutate``, bump ``seq`` and publish one frame for the job, atomically per job."""
        holder: dict[str, Frame] = {}

        def change(job: Job) -> None:
            if mutate is not None:
                mutate(job)
            job.seq += 1
            frame = job.frame(event, **extra)
            if event in FINAL_EVENTS:
                job.final_frame = frame
            holder["frame"] = frame

        try:
            # Only the final state must be on disk before anyone hears of it; a lost "started" or
            # progress record just makes a crashed job run again from the start.
            job = await self._store.update(job_id, change, durable=event in FINAL_EVENTS)
        except Skip:
            return None
        if job is None:
            return None
        topics = [job_topic(job_id)] + [client_topic(c) for c in job.client_ids]
        await self._hub.publish(topics, holder["frame"])
        return job

    async def finish(self, job_id: str, state: JobState, event: str, *, error: str = "",
                     counters: Counters | None = None, patience: float = 0.0,
                     only_from: JobState | None = None, **changes: Any) -> Job | None:
        """End a job with its final frame. With ``patience``, a store that is away (Redis
        restarting) is waited for that long, so a finished download is not thrown away."""
        now = time.time()
        message = changes.pop("message", None)

        def mutate(job: Job) -> None:  # may run more than once (optimistic transactions): no side effects
            # A final state is final; only a ready archive may still expire.
            if job.state.final and not (job.state == JobState.READY and state == JobState.EXPIRED):
                raise Skip
            if only_from is not None and job.state != only_from:
                raise Skip  # it moved on meanwhile (a runner claimed it)
            job.state = state
            job.error = error
            job.message = message or error or job.message
            job.finished_at = job.finished_at or now
            job.lease_until = None
            if counters is not None:
                job.done, job.total, job.bytes = counters.done, max(counters.total, counters.done), counters.bytes
            for name, value in changes.items():
                setattr(job, name, value)

        deadline = time.monotonic() + patience
        delay = 0.2
        while True:
            try:
                ended = await self.emit(job_id, event, mutate)
                if ended is not None and state != JobState.EXPIRED:
                    metrics.job_ended(ended.kind, str(ended.state), ended.started_at, ended.finished_at,
                                      ended.done, ended.bytes)
                return ended
            except StoreUnavailable:
                if time.monotonic() + delay > deadline:
                    raise
                log.warning("job store away; retrying the end of job_id=%s in %.1f s", job_id, delay)
                await asyncio.sleep(delay)
                delay = min(5.0, delay * 2)

    # --- running ----------------------------------------------------------------------------

    async def run(self, job_id: str) -> None:
        """Run one queued job to its end; called by the queue, at most N at once.

        A cancellation may land anywhere, even before the download starts: every path ends the
        job with a final frame, so DELETE never waits for a runner that will not answer.
        """
        job = await self._store.get(job_id)
        if job is None or job.state != JobState.QUEUED:
            return
        try:
            spec: JobSpec | None = job.spec
        except Exception:  # a kind or parameters this version does not know
            spec = None
        # Everything this job logs (here, in its runner, in our threads) carries its ids.
        logs.JOB_ID.set(job_id)
        logs.REQUEST_ID.set(job.request_id)
        logs.CLIENT_ID.set(job.client_ids[0] if job.client_ids else "")
        logs.SITE.set(spec.log_site() if spec is not None else "")
        runner = self._runners.get(spec.kind) if spec is not None else None
        if runner is None or spec is None:
            await self.finish(job_id, JobState.FAILED, "failed",
                              error=f"This server cannot run this '{job.kind}' job; start the download again.")
            return

        def running(j: Job) -> None:
            if j.state != JobState.QUEUED:  # cancelled meanwhile, or claimed by another worker
                raise Skip
            j.lease_until = time.time() + self.settings.job_lease_seconds
            j.worker = WORKER_ID
            j.state = JobState.RUNNING
            j.started_at = time.time()
            j.attempts += 1
            j.message = "Downloading."

        try:
            claimed = await self.emit(job_id, "started", running)
        except asyncio.CancelledError:
            await self._end_cancelled(job_id, None)
            raise
        if claimed is None:
            return

        async def publish(c: Counters) -> None:
            def mutate(j: Job) -> None:
                j.done, j.total, j.bytes = c.done, c.total, c.bytes
                if c.title:
                    j.title = c.title
                if c.message:
                    j.message = c.message

            try:
                saved = await self.emit(job_id, "progress", mutate)
            except StoreUnavailable:  # progress is best effort; the final frame is not
                log.warning("progress not saved job_id=%s (job store away)", job_id)
                return
            if saved is not None:
                claimed.seq = max(claimed.seq, saved.seq)  # the last frame sent, if the record is lost

        tracker = ProgressTracker(publish)
        work_dir = self._storage.work_dir(job_id)
        lost = asyncio.Event()
        heartbeat = asyncio.create_task(self._heartbeat(job_id, asyncio.current_task(), lost))
        try:
            work_dir.mkdir(parents=True, exist_ok=True)
            ending = await self._attempt(claimed, spec, runner, work_dir, tracker)
        except asyncio.CancelledError:
            ending = self._cancelled_ending(job_id, tracker)
        except OSError as exc:  # the work folder itself could not be made
            ending = self._failed_ending(job_id, tracker, DiskFull().detail if is_disk_full(exc)
                                         else "The server could not create the job's work folder.")
        finally:
            heartbeat.cancel()
            await asyncio.gather(heartbeat, return_exceptions=True)
            await tracker.close()
            # Partial files go before the final frame, so whoever hears it never sees them: moved
            # aside at once (one rename), deleted once the frame is out.
            aside = self._storage.set_aside_work(job_id)
        try:
            if lost.is_set():
                await self._end_lost(claimed, tracker.snapshot())
                return
            await ending()
        finally:
            if aside is not None:
                await self._files_pool.run(shutil.rmtree, aside, True)

    def _cancelled_ending(self, job_id: str, tracker: ProgressTracker) -> Callable[[], Awaitable[Any]]:
        if self._stopping:
            return lambda: self.finish(job_id, JobState.FAILED, "failed", error=SHUTDOWN_MESSAGE,
                                       counters=tracker.snapshot(), patience=2.0)
        return lambda: self._end_cancelled(job_id, tracker.snapshot())

    def _failed_ending(self, job_id: str, tracker: ProgressTracker, error: str) -> Callable[[], Awaitable[Any]]:
        return lambda: self.finish(job_id, JobState.FAILED, "failed", error=error, counters=tracker.snapshot(),
                                   patience=FINISH_PATIENCE_SECONDS)

    async def _end_cancelled(self, job_id: str, counters: Counters | None) -> None:
        await asyncio.shield(self.finish(job_id, JobState.CANCELLED, "cancelled", counters=counters,
                                         message=CANCELLED_MESSAGE, patience=5.0))

    async def _end_lost(self, job: Job, counters: Counters) -> None:
        """The job's record vanished while it ran (Redis lost its data): write it back as failed
        and tell its followers, so no socket closes without a final frame."""
        log.error("job record lost while running job_id=%s", job.job_id)
        job.state = JobState.FAILED
        job.error = job.message = LOST_MESSAGE
        job.finished_at = time.time()
        job.lease_until = None
        job.done, job.total, job.bytes = counters.done, max(counters.total, counters.done), counters.bytes
        job.seq += 1
        job.final_frame = job.frame("failed")
        with contextlib.suppress(Exception):
            await self._store.put(job)
        with contextlib.suppress(Exception):
            await self._hub.publish([job_topic(job.job_id)] + [client_topic(c) for c in job.client_ids],
                                   job.final_frame)

    async def _attempt(self, job: Job, spec: JobSpec, runner: Runner, work_dir: Path,
                       tracker: ProgressTracker) -> Callable[[], Awaitable[Any]]:
        """Run and build the archive; returns how the job ends (called once the work folder is gone)."""
        job_id = job.job_id
        try:
            output = await runner.run(RunContext(job=job, work_dir=work_dir, progress=tracker, spec=spec))
            await tracker.close()
            counters = tracker.snapshot()

            def zipping(j: Job) -> None:
                j.state = JobState.ZIPPING
                j.title = output.title or j.title
                j.done, j.total, j.bytes = counters.done, max(counters.total, counters.done), counters.bytes
                j.message = "Building the archive."

            with contextlib.suppress(StoreUnavailable):
                await self.emit(job_id, "progress", zipping)
            if output.library is not None:
                paths = await self._file_in_library(output, work_dir)
                message = output.message or f"{output.title or 'The book'} is in the library."
                return lambda: self._filed(job_id, counters, paths, output.skipped, message)
            fmt = archive_format(output.format)
            file_name = archive_file_name(output.file_stem, job_id, fmt)
            # Archive store: built in its final place (a folder) or in scratch, then uploaded (a
            # bucket); the job turns ready only after the store holds the whole archive.
            built = self._archives.build_path(file_name, work_dir)
            built.parent.mkdir(parents=True, exist_ok=True)
            await build_archive(self._files_pool, fmt, ArchiveContent(output.entries, output.book), built, work_dir)
            size = await self._archives.put(file_name, built, fmt.media_type)
            message = output.message or f"{output.title or 'The archive'} is ready to download."
            return lambda: self._ready(job_id, counters, file_name, output.download_name, size, message,
                                       skipped=output.skipped)
        except asyncio.CancelledError:
            await tracker.close()
            return self._cancelled_ending(job_id, tracker)
        except AppError as exc:
            log.info("job failed job_id=%s reason=%s", job_id, exc.detail)
            return self._failed_ending(job_id, tracker, exc.detail)
        except Exception as exc:
            if is_disk_full(exc):
                log.error("job failed job_id=%s reason=disk full", job_id)
                return self._failed_ending(job_id, tracker, DiskFull().detail)
            log.exception("job crashed job_id=%s", job_id)
            return self._failed_ending(
                job_id, tracker, "The download failed because of an internal error; the server log has details.")

    async def _heartbeat(self, job_id: str, runner_task: asyncio.Task[Any] | None, lost: asyncio.Event) -> None:
        """Renew the job's lease while it runs; stop the run if the job was ended elsewhere or its
        record vanished (``lost``)."""
        interval = self.settings.job_lease_seconds / 3

        def renew(job: Job) -> None:
            if job.state.final:
                raise Skip
            job.lease_until = time.time() + self.settings.job_lease_seconds

        while True:
            await asyncio.sleep(interval)
            try:
                job = await self._store.update(job_id, renew)
            except Skip:  # ended elsewhere (cancelled on another process)
                if runner_task is not None:
                    runner_task.cancel()
                return
            except Exception as exc:
                log.warning("lease renewal failed job_id=%s error=%s", job_id, type(exc).__name__)
                continue
            if job is None:
                lost.set()
                if runner_task is not None:
                    runner_task.cancel()
                return

    async def _ready(self, job_id: str, counters: Counters, file_name: str, download_name: str,
                     size: int, message: str, *, skipped: list[dict[str, Any]] | None = None) -> None:
        ready_at = time.time()
        # Archive store: from a bucket, ``bytes`` is the stored object's size (hosts.md).
        stored: dict[str, Any] = {"bytes": size} if self._archives.mode == "s3" else {}
        await self.finish(
            job_id, JobState.READY, "download_ready", counters=counters, file_name=file_name,
            download_name=download_name, expires_at=ready_at + self.settings.file_ttl_seconds,
            message=message, patience=FINISH_PATIENCE_SECONDS, skipped=list(skipped or []), **stored,
        )
        log.info("job ready job_id=%s file_name=%s size=%d", job_id, file_name, size)

    # --- the reader library ------------------------------------------------------------------

    async def _file_in_library(self, output: RunOutput, work_dir: Path) -> list[str]:
        """Build each book in the work folder and file it into the library (atomic, in place)."""
        if self.library is None:
            raise Unprocessable(LIBRARY_OFF)
        cbz = archive_format("cbz")
        paths = []
        for index, book in enumerate(output.library or []):
            built = work_dir / f".library-{index:04d}.cbz"
            await build_archive(self._files_pool, cbz, book.content, built, work_dir)
            await self._files_pool.run(self.library.file, built, book.relative_path)
            paths.append(book.relative_path)
        return paths

    async def _filed(self, job_id: str, counters: Counters, paths: list[str], skipped: list[dict[str, Any]],
                     message: str) -> None:
        await self.finish(job_id, JobState.READY, "download_ready", counters=counters, file_name="",
                          download_name="", expires_at=None, library_paths=paths, skipped=list(skipped),
                          message=message, patience=FINISH_PATIENCE_SECONDS)
        log.info("job filed in the library job_id=%s books=%d", job_id, len(paths))
        if self.scans is not None:  # after the final frame: a slow reader server never delays it
            task = asyncio.create_task(self.scans.scan(), name=f"library-scan-{job_id}")
            self._background.add(task)
            task.add_done_callback(self._background.discard)

    # --- the verbs callers use (nothing outside this module touches the parts) ----------------

    @property
    def archives(self) -> ArchiveStore:
        """Where finished archives live, to serve them (a folder, or a bucket shared by hosts)."""
        return self._archives

    async def find(self, job_id: str) -> Job | None:
        """The job, or None (``get`` raises NotFound instead)."""
        return await self._store.get(job_id)

    async def find_by_file_name(self, file_name: str) -> Job | None:
        """The job that made the archive of that ``file_name`` (None for a name no archive has)."""
        if self._storage.archive_path(file_name) is None:
            return None
        return await self._store.get_by_file_name(file_name)

    async def jobs_in(self, states: list[JobState]) -> list[Job]:
        return await self._store.list_states(states)

    async def usage(self) -> tuple[int, int]:
        """(archives, bytes) kept now."""
        return await self._archives.usage()

    async def execute(self, job_id: str) -> None:
        """Run a job handed to this worker by the scale-out queue."""
        execute = getattr(self._queue, "execute", None)
        if execute is None:
            raise RuntimeError("this process's queue runs its jobs itself")
        await execute(job_id)

    def follow_job(self, job_id: str) -> AsyncIterator[Delivery]:
        """A snapshot, then live frames, ending with the job's final frame."""
        from app.jobs import follow

        return follow.follow_job(follow.Feed(self._hub, self._store), job_id)

    def follow_client(self, client_id: str, *, progress: bool = False, replay_grace: float = 3.0
                      ) -> AsyncIterator[Delivery]:
        """What a client's notifications socket receives (finals, or every frame with ``progress``)."""
        from app.jobs import follow

        return follow.follow_client(follow.Feed(self._hub, self._store), client_id, progress=progress,
                                    replay_grace=replay_grace)

    async def mark_notified(self, job_id: str, client_id: str) -> None:
        """The client has received the job's final frame (it is not replayed to it again)."""
        from app.jobs import follow

        await follow.mark_notified(follow.Feed(self._hub, self._store), job_id, client_id)

    # --- the sweep (scheduled by app.jobs.cleanup) -------------------------------------------
    # Safe when many processes sweep at once: every change is conditional on the state it saw.

    async def sweep(self) -> int:
        """One pass over every job; returns how many archives expired."""
        now = time.time()
        storage = self._storage
        jobs = await self._store.list_states(list(JobState))
        # Library jobs (no archive) are the user's files: never expired, forgotten like failed jobs.
        ready = [j for j in jobs if j.state == JobState.READY and j.file_name]
        # Archive store: a bucket that does not answer is not a missing archive (nothing expires for
        # that), and an archive whose time is up stays ready until its delete succeeds.
        try:
            missing = await self._archives.missing([j.file_name for j in ready])
        except ArchiveStoreUnavailable:
            missing = set()
        expired = 0
        for job in ready:
            if (job.expires_at is not None and job.expires_at <= now) or job.file_name in missing:
                try:
                    await self.expire(job)
                except ArchiveStoreUnavailable:
                    sweep_log.warning("archive not deleted yet (storage unreachable) job_id=%s", job.job_id)
                    continue
                expired += 1
        for job in jobs:
            if job.state in (JobState.RUNNING, JobState.ZIPPING) and (job.lease_until or now) < now:
                await self._recover(job.job_id)
            elif job.state.final and (job.state != JobState.READY or not job.file_name) \
                    and (job.finished_at or now) < now - RECORD_TTL:
                await self._store.delete(job.job_id)
        await self._requeue_lost([j for j in jobs if j.state == JobState.QUEUED], now)
        active = {j.job_id for j in jobs if j.state.active}
        keep = {j.file_name for j in ready if j.file_name not in missing and (j.expires_at or now + 1) > now}
        await self._files_pool.run(storage.remove_leftovers, active, keep)
        return expired


    async def _recover(self, job_id: str) -> None:
        """A job whose worker stopped renewing its lease runs again, or fails after two tries."""
        now = time.time()
        current = await self._store.get(job_id)
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

        job = await self.emit(job_id, "failed" if give_up else "progress", check)
        if job is not None:
            sweep_log.warning("job recovered job_id=%s state=%s attempts=%d", job_id, job.state, job.attempts)
            if job.state == JobState.QUEUED:
                await self._queue.submit(job_id)


    async def _requeue_lost(self, queued: list[Job], now: float) -> None:
        """Queue again the jobs that are queued in the store but in no queue (a hand-off that failed,
        a queue that lost its data): running twice is harmless, a job only starts if still queued."""
        stale = {j.job_id for j in queued if (j.updated_at or now) < now - QUEUED_GRACE}
        if not stale:
            return
        lost = stale - await self._queue.holds(stale)
        for job_id in sorted(lost):
            sweep_log.warning("job queued again job_id=%s (it was in no queue)", job_id)
            await self._queue.submit(job_id)

    # --- cancelling, deleting, expiring -----------------------------------------------------

    async def cancel(self, job_id: str) -> Job:
        """Cancel a queued or running job, or delete a finished job's archive."""
        job = await self.get(job_id)
        if job.state == JobState.QUEUED:
            # Atomic: a runner that picks it up afterwards finds it cancelled and leaves it; one that
            # claimed it a moment ago is stopped below.
            await self.finish(job_id, JobState.CANCELLED, "cancelled", message=CANCELLED_MESSAGE,
                              only_from=JobState.QUEUED)
            job = await self.get(job_id)
        if job.state.active:
            if not await self._queue.cancel(job_id) or not await self._wait_final(job_id, timeout=10.0):
                # Nobody runs it any more (a worker died), or its runner does not stop: end it here,
                # its partial files first, so whoever hears "cancelled" never finds them.
                aside = self._storage.set_aside_work(job_id)
                if aside is not None:
                    await self._files_pool.run(shutil.rmtree, aside, True)
                await self.finish(job_id, JobState.CANCELLED, "cancelled", message=CANCELLED_MESSAGE)
        elif job.state == JobState.READY:
            await self.expire(job, message="The archive was deleted on request.")
        return await self.get(job_id)

    async def _wait_final(self, job_id: str, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            job = await self._store.get(job_id)
            if job is None or job.state.final:
                return True
            await asyncio.sleep(0.05)
        return False

    async def expire(self, job: Job, message: str = "The archive expired and was deleted.") -> None:
        if job.file_name:  # an unreachable bucket raises here: the job stays ready, to be tried again
            await self._archives.delete(job.file_name)
        await self.finish(job.job_id, JobState.EXPIRED, "expired", message=message)
