"""The event loop the command-line tools run on: uvloop where it is installed (it comes with
``uvicorn[standard]``), the default asyncio loop otherwise."""

from __future__ import annotations

import asyncio
import gc
from collections.abc import Coroutine
from typing import Any, TypeVar

T = TypeVar("T")


def new_runner() -> asyncio.Runner:
    """A runner for one command; several ``run`` calls share its loop (and the tasks left on it)."""
    try:
        import uvloop
    except ImportError:  # pragma: no cover - uvloop ships with uvicorn[standard]
        return asyncio.Runner()
    return asyncio.Runner(loop_factory=uvloop.new_event_loop)


def run(coro: Coroutine[Any, Any, T], runner: asyncio.Runner | None = None) -> T:
    """Run ``coro`` on ``runner`` (left open, its owner closes it), or on a loop of its own."""
    if runner is not None:
        return runner.run(coro)
    with new_runner() as own:
        return own.run(coro)


_gc_paused = False


def start_up_without_gc() -> None:
    """No garbage collection while a dataset command's process loads (pydantic, the settings, the
    HTTP client): the modules' objects live as long as the process, and the collector's passes over
    them cost ~15 ms of the start-up here (a full pass just before the first request). The command
    calls ``start_up_over`` when it starts its work."""
    global _gc_paused
    if gc.isenabled():
        gc.disable()
        _gc_paused = True


def start_up_over() -> None:
    """Collect garbage again, the start-up's objects frozen (never looked at again, as a server's
    are with ``JMBOORU_GC_FREEZE``); nothing happens if ``start_up_without_gc`` paused nothing."""
    global _gc_paused
    if _gc_paused:
        _gc_paused = False
        gc.freeze()
        gc.enable()
