"""Being a polite client, and saying so: rate limits, Retry-After, and notices while a site makes us wait."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from email.utils import parsedate_to_datetime

import httpx

# A job (or the CLI) listens here for "rate limited, retrying at ..." while it waits; None = resumed.
WaitListener = Callable[[str | None], None]
_wait_listener: ContextVar[WaitListener | None] = ContextVar("booru_wait_listener", default=None)
# The longest Retry-After worth waiting for in the current context (an HTTP request waits less than a job).
_wait_bound: ContextVar[float | None] = ContextVar("booru_wait_bound", default=None)


@contextmanager
def waits_reported_to(listener: WaitListener | None) -> Iterator[None]:
    """Tasks started inside inherit the listener (asyncio copies the context)."""
    token = _wait_listener.set(listener)
    try:
        yield
    finally:
        _wait_listener.reset(token)


@contextmanager
def wait_at_most(seconds: float) -> Iterator[None]:
    token = _wait_bound.set(seconds)
    try:
        yield
    finally:
        _wait_bound.reset(token)


def wait_bound(default: float) -> float:
    bound = _wait_bound.get()
    return default if bound is None else min(default, bound)


def report_wait(site: str, seconds: float) -> None:
    listener = _wait_listener.get()
    if listener is not None:
        at = time.strftime("%H:%M:%S", time.localtime(time.time() + seconds))
        listener(f"Rate limited by {site}; retrying at {at}.")


def report_resumed() -> None:
    listener = _wait_listener.get()
    if listener is not None:
        listener(None)


class RateLimiter:
    """Spaces calls at least ``1/rate`` seconds apart (a token bucket with a burst of one)."""

    def __init__(self, rate: float) -> None:
        self.interval = 1.0 / rate if rate > 0 else 0.0
        self._next = 0.0

    async def acquire(self) -> None:
        now = time.monotonic()
        slot = max(now, self._next)
        self._next = slot + self.interval
        if slot > now:
            await asyncio.sleep(slot - now)

    def pause(self, seconds: float) -> None:
        """Push every later call back (used when the site says Retry-After)."""
        self._next = max(self._next, time.monotonic() + seconds)


def retry_after(response: httpx.Response) -> float | None:
    value = response.headers.get("retry-after", "").strip()
    if not value:
        return None
    try:
        seconds = float(value)
    except ValueError:
        try:
            seconds = parsedate_to_datetime(value).timestamp() - time.time()
        except (TypeError, ValueError, OverflowError):
            return None
    if seconds != seconds:  # NaN
        return None
    return max(0.0, min(seconds, 86_400.0 * 365))
