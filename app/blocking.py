"""A bounded executor of our own for blocking work (jmcomic's sync client, Pillow, zipping, hashing).

FastAPI's default thread pool serves sync endpoints and file responses; long upstream calls must
not starve it, so blocking upstream work goes through pools sized and owned here.
"""

from __future__ import annotations

import asyncio
import contextvars
import functools
from collections.abc import Awaitable, Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any, ParamSpec, TypeVar

P = ParamSpec("P")
T = TypeVar("T")


def mark_retrieved(future: asyncio.Future[Any]) -> None:
    """A done callback that reads the outcome, so an error nobody awaits any more (its caller
    was cancelled) is not reported at exit as "Task exception was never retrieved"."""
    if not future.cancelled():
        future.exception()


async def run_to_end(awaitable: Awaitable[T]) -> T:
    """Await ``awaitable`` as a task of its own: a cancelled caller waits for it to finish before
    it unwinds (its outcome is read, never left unretrieved), then is cancelled as asked."""
    task = asyncio.ensure_future(awaitable)
    task.add_done_callback(mark_retrieved)
    try:
        return await asyncio.shield(task)
    except asyncio.CancelledError:
        await asyncio.wait([task])
        raise


class BlockingPool:
    def __init__(self, max_workers: int, name: str) -> None:
        self._executor = ThreadPoolExecutor(max_workers=max_workers, thread_name_prefix=name)
        self.max_workers = max_workers

    async def run(self, fn: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
        loop = asyncio.get_running_loop()
        ctx = contextvars.copy_context()
        call = functools.partial(ctx.run, fn, *args, **kwargs)
        return await loop.run_in_executor(self._executor, call)

    async def run_to_end(self, fn: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
        """Like ``run``, but a cancelled caller waits for the call to finish before it unwinds,
        so its clean-up never races with a write still in flight."""
        return await run_to_end(self.run(fn, *args, **kwargs))

    def submit(self, fn: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> Future[T]:
        """Start ``fn`` from synchronous code (a library hook running in one of our threads)."""
        return self._executor.submit(fn, *args, **kwargs)

    def shutdown(self, wait: bool = False) -> None:
        self._executor.shutdown(wait=wait, cancel_futures=True)
