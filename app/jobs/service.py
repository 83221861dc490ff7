"""The job engine: start, join, run, cancel and expire jobs, and publish their events."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import os
import shutil
import socket
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from app import logs, metrics
from app.archive_store import ArchiveStore, ArchiveStoreUnavailable, LocalArchiveStore
from app.archives import ArchiveContent, archive_file_name, archive_format, build_archive
from app.blocking import BlockingPool, run_to_end
from app.config import Settings
from app.errors import AppError, DiskFull, NotFound, StoreUnavailable, Unprocessable, is_disk_full
from app.jobs.events import Delivery, EventHub, Frame, client_topic, job_topic
from app.jobs.frames import FINAL_EVENTS, FinalEvent, FrameEvent, job_frame, joined_frame
from app.jobs.listing import JobQuery, order_key, page_and_cursor, waiting_message
from app.jobs.models import Job, JobState, Skip, new_job_id
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
# A finished download waits for the job store (Redis restarting, a full disk) as long as it takes:
# its final state must be saved before anyone hears of it. It retries at least this often, so it
# wins against the sweep, which gives a lease a full period after the store is back.
FINISH_PATIENCE_SECONDS = math.inf
FINISH_RETRY_MAX_DELAY = 1.0


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
        folders_pool: BlockingPool | None = None,
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
        # Making and moving aside work folders (quick calls, off the loop), apart from archive builds.
        self._folders_pool = folders_pool or files_pool
        self._stopping = False
        self.reconcile_on_start = reconcile_on_start
        # Jobs that were running when the process stopped and are not yet marked failed (the disk
        # was full at start): the sweep must not mistake them for jobs of a dead worker and re-run them.
        self.restart_pending = False
        self._reconciling: asyncio.Task[None] | None = None
        # The reader library and its scan triggers, when JMBOORU_LIBRARY_DIR is set (set by the Engine).
        self.library: Library | None = None
        self.scans: ScanTriggers | None = None
        self._background: set[asyncio.Task[Any]] = set()

    # --- life cycle -------------------------------------------------------------------------

    async def start(self) -> None:
        await self._store.open()
        await self._hub.start()
        if self.reconcile_on_start:
            self.restart_pending = True
            try:
                await self.reconcile_after_restart()
                self.restart_pending = False
            except StoreUnavailable as exc:
                # Start anyway (reads, health, the page work); those jobs are ended once a write succeeds.
                log.warning("server started, but its job store cannot be written: %s", exc.detail)
                self._reconciling = asyncio.create_task(self._reconcile_when_writable(), name="reconcile")
        await self._queue.start(self.run)

    async def _reconcile_when_writable(self) -> None:
        while True:
            await asyncio.sleep(2.0)
            try:
                await self.reconcile_after_restart()
            except StoreUnavailable:
                continue
            self.restart_pending = False
            log.warning("job store writable again; jobs interrupted by the restart are ended")
            return

    async def stop(self) -> None:
        """Let running jobs finish within the grace period, cancel the rest, close everything."""
        self._stopping = True
        if self._reconciling is not None:
            self._reconciling.cancel()
            await asyncio.gather(self._reconciling, return_exceptions=True)
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
                await self._hub.publish([client_topic(client_id)], joined_frame(job.final_frame))
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

    async def emit(self, job_id: str, event: FrameEvent, mutate: Callable[[Job], None] | None = None) -> Job | None:
        """Apply ``mutate``, bump ``seq`` and publish one frame for the job, atomically per job."""
        holder: dict[str, Frame] = {}

        def change(job: Job) -> None:
            if mutate is not None:
                mutate(job)
            job.seq += 1
            frame = job_frame(job, event)
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

    async def finish(self, job_id: str, state: JobState, event: FinalEvent, *, error: str = "",
                     counters: Counters | None = None, patience: float = 0.0,
                     only_from: JobState | None = None, attempt: int | None = None,
                     **changes: Any) -> Job | None:
        """End a job with its final frame. With ``patience``, a store that is away (Redis
        restarting, a full disk) is waited for that long (or until the server stops), so a finished
        download is not thrown away. ``attempt``: the run ending it, which only ends the job while
        it still owns it (a run the sweep handed to another worker leaves it alone), except with an
        archive: a run that finished wins."""
        now = time.time()
        message = changes.pop("message", None)

        def mutate(job: Job) -> None:  # may run more than once (optimistic transactions): no side effects
            # A final state is final; only a ready archive may still expire.
            if job.state.final and not (job.state == JobState.READY and state == JobState.EXPIRED):
                raise Skip
            if only_from is not None and job.state != only_from:
                raise Skip  # it moved on meanwhile (a runner claimed it)
            if attempt is not None and job.attempts != attempt and state != JobState.READY:
                raise Skip  # another run owns it now
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
        tries = 0
        while True:
            try:
                ended = await self.emit(job_id, event, mutate)
                if ended is not None and state != JobState.EXPIRED:
                    metrics.job_ended(ended.kind, str(ended.state), ended.started_at, ended.finished_at,
                                      ended.done, ended.bytes)
                if tries:
                    log.warning("job store back; job_id=%s ended %s", job_id, state)
                return ended
            except StoreUnavailable:
                if time.monotonic() + delay > deadline or (self._stopping and math.isinf(patience)):
                    raise  # (an endless wait ends with the server; a bounded one runs its course)
                tries += 1
                # One line when the wait starts: a full disk can last hours.
                (log.warning if tries == 1 else log.debug)(
                    "job store away; the end of job_id=%s is saved as soon as it is back", job_id)
                await asyncio.sleep(delay)
                delay = min(FINISH_RETRY_MAX_DELAY, delay * 2)

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
        fate = _RunFate()
        heartbeat = asyncio.create_task(self._heartbeat(job_id, claimed.attempts, asyncio.current_task(), fate))
        try:
            await self._folders_pool.run_to_end(work_dir.mkdir, parents=True, exist_ok=True)
            ending = await self._attempt(claimed, spec, runner, work_dir, tracker)
        except asyncio.CancelledError:
            ending = Cancelled()
        except OSError as exc:  # the work folder itself could not be made
            ending = Failed(DiskFull().detail if is_disk_full(exc)
                            else "The server could not create the job's work folder.")
        # From here on the job only ends. A cancel arriving now (a DELETE racing the end, the
        # shutdown) must not cut that short: the job would stay "running" with no final frame and
        # the DELETE would wait out its 10 s before ending it itself.
        await run_to_end(self._conclude(claimed, ending, heartbeat, tracker, fate))

    async def _conclude(self, job: Job, ending: Outcome, heartbeat: asyncio.Task[None], tracker: ProgressTracker,
                        fate: _RunFate) -> None:
        heartbeat.cancel()
        await asyncio.gather(heartbeat, return_exceptions=True)
        await tracker.close()
        # Partial files go before the final frame, so whoever hears it never sees them: moved aside
        # at once (one rename), deleted beside the ending, so a full disk gets its space back while
        # the final state waits to be written.
        aside = await self._folders_pool.run_to_end(self._storage.set_aside_work, job.job_id)
        removal = asyncio.ensure_future(self._files_pool.run(shutil.rmtree, aside, True)) if aside else None
        try:
            if fate.superseded:
                log.warning("job taken over by another run job_id=%s; this run stops", job.job_id)
                return
            if fate.lost or (await self._end(job, ending, tracker.snapshot()) is None
                             and await self._vanished(job.job_id)):
                # Also a record lost before the heartbeat noticed: the job ended, and nothing was saved.
                await self._end_lost(job, tracker.snapshot())
        finally:
            if removal is not None:
                await asyncio.gather(removal, return_exceptions=True)

    async def _vanished(self, job_id: str) -> bool:
        try:
            return await self._store.get(job_id) is None
        except StoreUnavailable:
            return False

    async def _end(self, job: Job, outcome: Outcome, counters: Counters) -> Job | None:
        """Write how a run ended and send its final frame (None: nothing was written)."""
        match outcome:
            case Ready():
                return await self._ready(job.job_id, counters, outcome)
            case Filed():
                return await self._filed(job.job_id, counters, outcome)
            case Failed():
                return await self.finish(job.job_id, JobState.FAILED, "failed", error=outcome.error, counters=counters,
                                         patience=FINISH_PATIENCE_SECONDS, attempt=job.attempts)
            case Cancelled() if self._stopping:
                return await self.finish(job.job_id, JobState.FAILED, "failed", error=SHUTDOWN_MESSAGE,
                                         counters=counters, patience=2.0, attempt=job.attempts)
            case Cancelled():
                return await self._end_cancelled(job.job_id, counters, attempt=job.attempts)
            case EndedElsewhere():
                return None

    async def _end_cancelled(self, job_id: str, counters: Counters | None, attempt: int | None = None) -> Job | None:
        return await run_to_end(self.finish(job_id, JobState.CANCELLED, "cancelled", counters=counters,
                                            message=CANCELLED_MESSAGE, patience=5.0, attempt=attempt))

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
        job.final_frame = job_frame(job, "failed")
        with contextlib.suppress(Exception):
            await self._store.put(job)
        with contextlib.suppress(Exception):
            await self._hub.publish([job_topic(job.job_id)] + [client_topic(c) for c in job.client_ids],
                                   job.final_frame)

    async def _attempt(self, job: Job, spec: JobSpec, runner: Runner, work_dir: Path,
                       tracker: ProgressTracker) -> Outcome:
        """Run and build the archive; returns how the job ends (written once the work folder is gone)."""
        job_id = job.job_id
        try:
            output = await runner.run(RunContext(job=job, work_dir=work_dir, progress=tracker, spec=spec))
            await tracker.close()
            counters = tracker.snapshot()

            def zipping(j: Job) -> None:
                if j.state.final:
                    raise Skip  # another run of it (queued again while Redis was away) finished first
                j.state = JobState.ZIPPING  # ours again, if the sweep had queued it again meanwhile
                j.title = output.title or j.title
                j.done, j.total, j.bytes = counters.done, max(counters.total, counters.done), counters.bytes
                j.message = "Building the archive."

            try:
                if await self.emit(job_id, "progress", zipping) is None:
                    log.warning("job already ended elsewhere job_id=%s; no archive built", job_id)
                    return EndedElsewhere()
            except StoreUnavailable:
                pass  # building goes on; the end waits for the store
            if output.library is not None:
                paths = await self._file_in_library(output, work_dir)
                message = output.message or f"{output.title or 'The book'} is in the library."
                return Filed(paths, list(output.skipped), message)
            fmt = archive_format(output.format)
            file_name = archive_file_name(output.file_stem, job_id, fmt)
            # Archive store: built in its final place (a folder) or in scratch, then uploaded (a
            # bucket); the job turns ready only after the store holds the whole archive.
            built = self._archives.build_path(file_name, work_dir)
            built_size = await build_archive(self._files_pool, fmt, ArchiveContent(output.entries, output.book),
                                             built, work_dir)
            size = await self._archives.put(file_name, built, fmt.media_type, built_size)
            message = output.message or f"{output.title or 'The archive'} is ready to download."
            return Ready(file_name, output.download_name, size, message, list(output.skipped))
        except asyncio.CancelledError:
            await tracker.close()
            return Cancelled()
        except AppError as exc:
            log.info("job failed job_id=%s reason=%s", job_id, exc.detail)
            return Failed(exc.detail)
        except Exception as exc:
            if is_disk_full(exc):
                log.error("job failed job_id=%s reason=disk full", job_id)
                return Failed(DiskFull().detail)
            log.exception("job crashed job_id=%s", job_id)
            return Failed("The download failed because of an internal error; the server log has details.")

    async def _heartbeat(self, job_id: str, attempt: int, runner_task: asyncio.Task[Any] | None,
                         fate: _RunFate) -> None:
        """Renew the job's lease while it runs; stop the run if the job was ended elsewhere, its
        record vanished (``fate.lost``) or another run took it over (``fate.superseded``).

        A lease that ran out while Redis was away may have had the job queued again: while no other
        run has claimed it, this run takes it back (the queued copy then finds it running and stops).
        """
        interval = self.settings.job_lease_seconds / 3

        def renew(job: Job) -> None:
            if job.state.final:
                raise Skip
            if job.attempts != attempt:
                fate.superseded = True
                raise Skip
            if job.state == JobState.QUEUED:
                job.state = JobState.RUNNING
                job.worker = WORKER_ID
                job.message = "Downloading."
            job.lease_until = time.time() + self.settings.job_lease_seconds

        failing = False
        while True:
            await asyncio.sleep(interval)
            try:
                job = await self._store.update(job_id, renew)
            except Skip:  # ended elsewhere (cancelled on another process), or taken over
                if runner_task is not None:
                    runner_task.cancel()
                return
            except Exception as exc:
                if not failing:  # one line per outage, not one per beat
                    log.warning("lease renewal failed job_id=%s error=%s", job_id, type(exc).__name__)
                failing = True
                continue
            failing = False
            if job is None:
                fate.lost = True
                if runner_task is not None:
                    runner_task.cancel()
                return

    async def _ready(self, job_id: str, counters: Counters, ready: Ready) -> Job | None:
        ready_at = time.time()
        # Archive store: from a bucket, ``bytes`` is the stored object's size (hosts.md).
        stored: dict[str, Any] = {"bytes": ready.size} if self._archives.mode == "s3" else {}
        ended = await self.finish(
            job_id, JobState.READY, "download_ready", counters=counters, file_name=ready.file_name,
            download_name=ready.download_name, expires_at=ready_at + self.settings.file_ttl_seconds,
            message=ready.message, patience=FINISH_PATIENCE_SECONDS, skipped=ready.skipped, **stored,
        )
        log.info("job ready job_id=%s file_name=%s size=%d", job_id, ready.file_name, ready.size)
        return ended

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

    async def _filed(self, job_id: str, counters: Counters, filed: Filed) -> Job | None:
        ended = await self.finish(job_id, JobState.READY, "download_ready", counters=counters, file_name="",
                                  download_name="", expires_at=None, library_paths=filed.paths,
                                  skipped=filed.skipped, message=filed.message, patience=FINISH_PATIENCE_SECONDS)
        log.info("job filed in the library job_id=%s books=%d", job_id, len(filed.paths))
        if self.scans is not None:  # after the final frame: a slow reader server never delays it
            task = asyncio.create_task(self.scans.scan(), name=f"library-scan-{job_id}")
            self._background.add(task)
            task.add_done_callback(self._background.discard)
        return ended

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

    async def sweep(self, *, store_back_at: float = 0.0) -> int:
        """One pass over every job; returns how many archives expired.

        ``store_back_at``: when the job store came back from an outage this process saw. A lease that
        ran out while the store was away says nothing about its worker (it could not renew), so it gets
        one more full lease from then before the job is recovered: a worker that finished meanwhile
        saves its end first, instead of the job being downloaded a second time.
        """
        now = time.time()
        recover_from = store_back_at + self.settings.job_lease_seconds
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
            lapsed = (job.lease_until or now) < now and now >= recover_from and not self.restart_pending
            if job.state in (JobState.RUNNING, JobState.ZIPPING) and lapsed:
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
                aside = await self._folders_pool.run_to_end(self._storage.set_aside_work, job_id)
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


# --- how a run ended: a value, written by JobService._end ---------------------------------------


@dataclass(frozen=True)
class Ready:
    """An archive in the archive store, ready to download."""
    file_name: str
    download_name: str
    size: int
    message: str
    skipped: list[dict[str, Any]] = field(default_factory=list)


@dataclass(frozen=True)
class Filed:
    """Books filed into the reader library (no archive)."""
    paths: list[str]
    skipped: list[dict[str, Any]]
    message: str


@dataclass(frozen=True)
class Failed:
    error: str


@dataclass(frozen=True)
class Cancelled:
    """Cancelled by a DELETE, or stopped by the shutdown (then it ends as failed, to be retried)."""


@dataclass(frozen=True)
class EndedElsewhere:
    """Another run of the job (queued again while Redis was away) wrote its end first."""


Outcome = Ready | Filed | Failed | Cancelled | EndedElsewhere


class _RunFate:
    """What the heartbeat learned about a run: its record vanished, or another run owns the job."""

    def __init__(self) -> None:
        self.lost = False
        self.superseded = False


