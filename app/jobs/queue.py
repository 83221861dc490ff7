"""The job queue: the ``JobQueue`` protocol and the in-process implementation."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Coroutine
from typing import Any, Protocol

log = logging.getLogger("jmbooru.jobs")

RunJob = Callable[[str], Coroutine[Any, Any, None]]


class JobQueue(Protocol):
    async def start(self, run: RunJob) -> None: ...
    async def submit(self, job_id: str) -> None: ...
    async def holds(self, job_ids: set[str]) -> set[str]:
        """Which of ``job_ids`` wait in the queue (for the sweep: a queued job nobody holds is lost)."""
        ...
    async def cancel(self, job_id: str) -> bool:
        """Stop a running job in this process; False when it does not run here."""
        ...
    async def stop(self, grace_seconds: float) -> None: ...


class LocalJobQueue:
    """At most ``concurrency`` jobs run at once on this event loop; the rest wait in order."""

    def __init__(self, concurrency: int) -> None:
        self.concurrency = concurrency
        self._pending: asyncio.Queue[str] = asyncio.Queue()
        self._waiting: set[str] = set()
        self._workers: list[asyncio.Task[None]] = []
        self._running: dict[str, asyncio.Task[None]] = {}
        self._run: RunJob | None = None

    async def start(self, run: RunJob) -> None:
        self._run = run
        self._workers = [asyncio.create_task(self._worker(i), name=f"job-worker-{i}") for i in range(self.concurrency)]

    async def submit(self, job_id: str) -> None:
        self._waiting.add(job_id)
        self._pending.put_nowait(job_id)

    async def holds(self, job_ids: set[str]) -> set[str]:
        return job_ids & (self._waiting | set(self._running))

    async def _worker(self, index: int) -> None:
        assert self._run is not None
        while True:
            job_id = await self._pending.get()
            task = asyncio.create_task(self._run(job_id), name=f"job-{job_id}")
            self._running[job_id] = task
            self._waiting.discard(job_id)
            try:
                await asyncio.shield(task)
            except asyncio.CancelledError:
                if not task.done():  # the worker itself is being stopped
                    raise
            except Exception:
                log.exception("job crashed job_id=%s", job_id)
            finally:
                self._running.pop(job_id, None)

    async def cancel(self, job_id: str) -> bool:
        task = self._running.get(job_id)
        if task is None or task.done():
            return False
        task.cancel()
        return True

    async def stop(self, grace_seconds: float) -> None:
        for worker in self._workers:
            worker.cancel()
        await finish_or_cancel(list(self._running.values()), grace_seconds)
        await asyncio.gather(*self._workers, return_exceptions=True)


async def finish_or_cancel(tasks: list[asyncio.Task[Any]], grace_seconds: float) -> None:
    """Give running jobs ``grace_seconds`` to finish, then cancel them and let them clean up."""
    if not tasks:
        return
    _, pending = await asyncio.wait(tasks, timeout=grace_seconds)
    for task in pending:
        task.cancel()
    if pending:
        await asyncio.wait(pending, timeout=max(grace_seconds, 5.0))
