"""Progress counters that runners update from any thread, published at most ~10 times a second."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass


@dataclass
class Counters:
    done: int = 0
    total: int = 0
    bytes: int = 0
    title: str | None = None
    message: str | None = None  # what the job is doing, when it is not plain downloading


Publish = Callable[[Counters], Awaitable[None]]


class ProgressTracker:
    """The first change is published at once, later ones are coalesced to one per ``interval``."""

    def __init__(self, publish: Publish, interval: float = 0.1) -> None:
        self._publish = publish
        self._interval = interval
        self._lock = threading.Lock()
        self._counters = Counters()
        self._dirty = False
        self._woken = False  # a wake-up of the loop is already on its way
        self._last = 0.0
        self._task: asyncio.Task[None] | None = None
        self._loop = asyncio.get_running_loop()
        self._closed = False

    def update(self, *, done: int = 0, total: int | None = None, nbytes: int = 0, title: str | None = None,
               message: str | None = None) -> None:
        """Add ``done`` files and ``nbytes`` bytes; set ``total``/``title``/``message``. Safe from any thread."""
        with self._lock:
            c = self._counters
            c.done += done
            c.bytes += nbytes
            if total is not None:
                c.total = total
            if c.done > c.total:
                c.total = c.done
            if title is not None:
                c.title = title
            if message is not None:
                c.message = message
            self._dirty = True
            if self._woken:
                return  # the pending flush will publish these counters too
            self._woken = True
        try:
            on_loop = asyncio.get_running_loop() is self._loop
        except RuntimeError:
            on_loop = False
        if on_loop:
            self._schedule()
        else:
            try:
                self._loop.call_soon_threadsafe(self._schedule)
            except RuntimeError:  # the loop is gone (shutdown): nothing left to publish to
                pass

    def snapshot(self) -> Counters:
        with self._lock:
            c = self._counters
            return Counters(c.done, c.total, c.bytes, c.title, c.message)

    def _schedule(self) -> None:
        if self._task is None and not self._closed:
            self._task = self._loop.create_task(self._flush_later())

    async def _flush_later(self) -> None:
        try:
            wait = self._last + self._interval - time.monotonic()
            if wait > 0:
                await asyncio.sleep(wait)
            await self._flush()
        finally:
            self._task = None
        if self._dirty and not self._closed:
            self._schedule()

    async def _flush(self) -> None:
        with self._lock:
            self._woken = False
            if not self._dirty:
                return
            self._dirty = False
            c = self._counters
            counters = Counters(c.done, c.total, c.bytes, c.title, c.message)
        self._last = time.monotonic()
        await self._publish(counters)

    async def close(self) -> None:
        """Stop publishing; the caller writes the final counters with the job's final state."""
        self._closed = True
        task = self._task
        if task is not None:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
