"""Where jobs live: the ``JobStore`` protocol and the embedded SQLite implementation."""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import functools
import json
import logging
import os
import sqlite3
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine, Iterable
from pathlib import Path
from typing import Any, ParamSpec, Protocol, TypeVar

from app.blocking import BlockingPool, mark_retrieved
from app.errors import AppError, StoreUnavailable, is_disk_full
from app.jobs.listing import JobQuery, newest_page, order_key
from app.jobs.models import Job, JobState
from app.sqlite_wal import connect_wal, free_space, is_new

log = logging.getLogger("jmbooru.jobs")

Mutation = Callable[[Job], None]
P = ParamSpec("P")
T = TypeVar("T")


class JobStore(Protocol):
    async def open(self) -> None: ...
    async def close(self) -> None: ...
    async def get(self, job_id: str) -> Job | None: ...
    async def get_by_file_name(self, file_name: str) -> Job | None: ...
    async def create_or_join(self, job: Job, client_id: str | None) -> tuple[Job, bool]:
        """Insert ``job`` unless an active or still-fresh ready job has the same key; join that one."""
        ...
    async def update(self, job_id: str, mutate: Mutation, *, durable: bool = True) -> Job | None:
        """Apply ``mutate`` atomically and return the new job (None when the job does not exist).

        ``durable=False`` (progress) may return before the change is on disk; it is written in order.
        """
        ...
    async def put(self, job: Job) -> None:
        """Write ``job`` as it is (a record that vanished from the store is written back)."""
        ...
    async def list_states(self, states: Iterable[JobState]) -> list[Job]: ...
    async def jobs_for_client(self, client_id: str) -> list[Job]: ...
    async def is_notified(self, job_id: str, client_id: str) -> bool:
        """Whether the job's final frame is recorded as delivered to ``client_id`` (a read, no change)."""
        ...
    async def page(self, query: JobQuery) -> list[Job]:
        """Up to ``query.limit + 1`` matching jobs, newest first, older than ``query.before``."""
        ...
    async def queued_order(self) -> list[str]:
        """The ids of queued jobs, oldest first: the order they start in."""
        ...
    async def delete(self, job_id: str) -> None: ...


def joinable(job: Job, now: float) -> bool:
    if job.state.active:
        return True
    # A library job that ended is never joined: asked again, it files again (library.md "Repeats").
    return job.state == JobState.READY and bool(job.file_name) and (job.expires_at is None or job.expires_at > now + 60)


def add_client(job: Job, client_id: str | None) -> None:
    if not client_id:
        return
    if client_id not in job.client_ids:
        job.client_ids.append(client_id)
    # When this client last asked for the job: a notification socket tells its new jobs from old ones.
    job.client_joined_at[client_id] = time.time()
    if client_id in job.notified:  # asked again: it is owed the final frame again
        job.notified.remove(client_id)


def to_the_end(method: Callable[P, Awaitable[T]]) -> Callable[P, Coroutine[Any, Any, T]]:
    """Run a change to its end even if its caller is cancelled (a socket closing right after a
    frame, a request given up). Memory changes only once the change is on disk, so a change cut
    off half-way would be lost: "the client got this final" forgotten, and the final sent again."""

    @functools.wraps(method)
    async def wrapper(*args: P.args, **kwargs: P.kwargs) -> T:
        change = asyncio.ensure_future(method(*args, **kwargs))
        change.add_done_callback(mark_retrieved)  # read even if nobody awaits it any more
        return await asyncio.shield(change)

    return wrapper


class KeyedLocks:
    """One asyncio lock per key, forgotten when nobody holds or waits for it."""

    def __init__(self) -> None:
        self._locks: dict[str, tuple[asyncio.Lock, int]] = {}

    def busy(self, key: str) -> bool:
        """Whether somebody holds or waits for ``key``'s lock."""
        return key in self._locks

    @contextlib.asynccontextmanager
    async def hold(self, key: str) -> AsyncIterator[None]:
        lock, users = self._locks.get(key, (None, 0))
        lock = lock or asyncio.Lock()
        self._locks[key] = (lock, users + 1)
        try:
            async with lock:
                yield
        finally:
            lock, users = self._locks[key]
            if users == 1:
                del self._locks[key]
            else:
                self._locks[key] = (lock, users - 1)


class SqliteJobStore:
    """Jobs in memory for speed, written through to SQLite so they survive a restart.

    Only one process uses the embedded store, and every mutation happens on its event loop,
    so the in-memory dict is the truth and SQLite is its durable copy. Writes go through a
    one-thread pool, which keeps them in order and off the loop.

    A durable change is made to a copy and reaches memory only once it is on disk: if the write
    fails (a full disk), the job reads as it was, and the caller's retry applies the change again,
    so nobody is told of a final state that a restart would not find.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self._jobs: dict[str, Job] = {}
        self._pool = BlockingPool(1, "sqlite")
        self._db: sqlite3.Connection | None = None
        self._lock_fd: int | None = None
        self._job_locks = KeyedLocks()  # one change of a job at a time (a durable one waits for its write)

    async def open(self) -> None:
        self._lock_single_process()
        self._jobs = {job.job_id: job for job in await self._pool.run(self._open_sync)}

    def _lock_single_process(self) -> None:
        """Refuse a second process on the same data folder: it could not see this one's jobs."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path.with_suffix(".lock"), os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise RuntimeError(
                f"Another jmbooru process already uses the data folder {self.path.parent} without Redis. "
                "Several API processes (uvicorn --workers N, gunicorn) need JMBOORU_REDIS_URL, because a "
                "job started in one process could never notify a WebSocket connected to another."
            ) from None
        self._lock_fd = fd

    def _open_sync(self) -> list[Job]:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        try:
            db = self._connect()
        except sqlite3.OperationalError as exc:
            if not is_new(self.path):
                raise
            # A new data folder on a full disk: there are no jobs to read yet, and the database is
            # created by the first write that fits (until then, new downloads are refused with 503).
            log.warning("job database %s not created yet (%s); is the disk full? free: %s",
                        self.path, exc, free_space(self.path.parent))
            return []
        self._db = db
        return [Job.from_record(json.loads(row[0])) for row in db.execute("SELECT record FROM jobs")]

    def _connect(self) -> sqlite3.Connection:
        db = connect_wal(self.path)  # this process holds the data folder's lock: exclusive is fine
        try:
            db.execute("PRAGMA synchronous=NORMAL")
            db.execute(
                "CREATE TABLE IF NOT EXISTS jobs (job_id TEXT PRIMARY KEY, key TEXT, state TEXT, "
                "updated_at REAL, record TEXT NOT NULL)"
            )
            db.commit()
        except BaseException:
            db.close()
            raise
        return db

    def _connection(self) -> sqlite3.Connection:
        if self._db is None:  # not created at start (a full disk): try again now
            self._db = self._connect()
        return self._db

    async def close(self) -> None:
        await self._pool.run(self._close_sync)
        self._pool.shutdown(wait=True)

    def _close_sync(self) -> None:
        if self._db is not None:
            self._db.close()
            self._db = None
        if self._lock_fd is not None:
            os.close(self._lock_fd)  # closing the descriptor releases the lock
            self._lock_fd = None

    def _write_sync(self, record: dict[str, object]) -> None:
        db = self._connection()
        db.execute(
            "INSERT OR REPLACE INTO jobs (job_id, key, state, updated_at, record) VALUES (?, ?, ?, ?, ?)",
            (record["job_id"], record["key"], record["state"], record["updated_at"], json.dumps(record)),
        )
        db.commit()

    def _delete_sync(self, job_id: str) -> None:
        db = self._connection()
        db.execute("DELETE FROM jobs WHERE job_id = ?", (job_id,))
        db.commit()

    async def _persist(self, job: Job) -> None:
        try:
            await self._pool.run(self._write_sync, job.to_record())
        except (OSError, sqlite3.Error) as exc:
            raise store_failure(exc) from exc

    async def _commit(self, changed: Job) -> None:
        """Write ``changed`` and only then make it the job in memory."""
        await self._persist(changed)
        self._jobs[changed.job_id] = changed

    async def get(self, job_id: str) -> Job | None:
        job = self._jobs.get(job_id)
        return job.copy() if job else None

    async def get_by_file_name(self, file_name: str) -> Job | None:
        for job in self._jobs.values():
            if job.file_name == file_name:
                return await self.get(job.job_id)
        return None

    @to_the_end
    async def create_or_join(self, job: Job, client_id: str | None) -> tuple[Job, bool]:
        now = time.time()
        for existing in self._jobs.values():
            if existing.key == job.key and joinable(existing, now):
                async with self._job_locks.hold(existing.job_id):
                    joined = self._jobs.get(existing.job_id, existing).copy()
                    add_client(joined, client_id)
                    joined.updated_at = now
                    await self._commit(joined)
                return joined.copy(), False
        add_client(job, client_id)
        self._jobs[job.job_id] = job
        try:
            await self._persist(job)
        except BaseException:
            # Not on disk, so not a job: nobody may join it.
            self._jobs.pop(job.job_id, None)
            raise
        return job.copy(), True

    async def update(self, job_id: str, mutate: Mutation, *, durable: bool = True) -> Job | None:
        if not durable and not self._job_locks.busy(job_id):
            # Nothing to wait for: applied at once, with no await between reading the job and
            # replacing it (nothing interleaves, no cancel can cut it), then written behind. A
            # progress frame or a socket's "final delivered" costs no task and no lock; every socket
            # of a client after the first then finds it recorded (1,000 sockets at once: measured).
            return self._change_behind(job_id, mutate)
        return await self._update_in_turn(job_id, mutate, durable=durable)

    @to_the_end
    async def _update_in_turn(self, job_id: str, mutate: Mutation, *, durable: bool) -> Job | None:
        async with self._job_locks.hold(job_id):
            if not durable:
                return self._change_behind(job_id, mutate)
            made = self._changed(job_id, mutate)
            if made is None:
                return None
            await self._commit(made[0])
            return made[1]

    def _change_behind(self, job_id: str, mutate: Mutation) -> Job | None:
        # Written behind, in order on the one SQLite thread: memory is the truth in this mode,
        # and a job's progress lost in a crash only makes it look earlier than it was.
        made = self._changed(job_id, mutate)
        if made is None:
            return None
        changed, snapshot = made
        self._jobs[job_id] = changed
        self._pool.submit(self._write_sync, snapshot.to_record()).add_done_callback(_log_failure)
        return snapshot

    def _changed(self, job_id: str, mutate: Mutation) -> tuple[Job, Job] | None:
        """``mutate`` applied to a copy of the job (memory untouched): the copy and a snapshot of it."""
        job = self._jobs.get(job_id)
        if job is None:
            return None
        changed = job.copy()
        mutate(changed)
        changed.updated_at = time.time()
        return changed, changed.copy()

    @to_the_end
    async def put(self, job: Job) -> None:
        async with self._job_locks.hold(job.job_id):
            await self._commit(job.copy())

    async def list_states(self, states: Iterable[JobState]) -> list[Job]:
        wanted = set(states)
        return [j.copy() for j in self._jobs.values() if j.state in wanted]

    async def is_notified(self, job_id: str, client_id: str) -> bool:
        job = self._jobs.get(job_id)
        return job is not None and client_id in job.notified

    async def jobs_for_client(self, client_id: str) -> list[Job]:
        jobs = [j for j in self._jobs.values() if client_id in j.client_ids]
        return [j.copy() for j in sorted(jobs, key=lambda j: j.created_at)]

    async def page(self, query: JobQuery) -> list[Job]:
        return [j.copy() for j in newest_page(self._jobs.values(), query)]

    async def queued_order(self) -> list[str]:
        queued = sorted((j for j in self._jobs.values() if j.state == JobState.QUEUED), key=order_key)
        return [j.job_id for j in queued]

    @to_the_end
    async def delete(self, job_id: str) -> None:
        async with self._job_locks.hold(job_id):  # never while a write of it is under way
            if self._jobs.pop(job_id, None) is not None:
                try:
                    await self._pool.run(self._delete_sync, job_id)
                except (OSError, sqlite3.Error) as exc:
                    raise store_failure(exc) from exc


def _log_failure(future: Any) -> None:
    if not future.cancelled() and future.exception() is not None:
        log.warning("job store write-behind failed: %s", type(future.exception()).__name__)


def store_failure(exc: BaseException) -> AppError:
    """The sentence for a job store that cannot be written (the details go to the log)."""
    log.error("job store write failed: %s: %s", type(exc).__name__, exc)
    if is_disk_full(exc) or "full" in str(exc).lower():
        return StoreUnavailable(
            "The server cannot save jobs right now: its disk is full. Nothing was started; "
            "the operator needs to free space in the data folder. Try again later."
        )
    return StoreUnavailable("The server cannot save jobs right now; nothing was started. Try again in a moment.")
