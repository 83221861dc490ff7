"""Upstream calls counted where the sources make them, without loading Prometheus.

The booru client and jmcomic's requests report every call that ended (``answered``) and every call
tried again (``retried``) here. ``app.metrics`` installs its counters when it is loaded, which the
API and every Engine (server and worker) do before any job runs, so whatever can expose
``/metrics`` counts every call. A command-line download never loads it: it does not pay for
prometheus_client (~30 ms of its start-up on a small machine) to count what nobody could read.
"""

from __future__ import annotations

from collections.abc import Callable

_answered: Callable[[str, str], None] | None = None
_retried: Callable[[str], None] | None = None


def install(answered: Callable[[str, str], None], retried: Callable[[str], None]) -> None:
    """Count from now on with these (``app.metrics`` installs its counters when it is loaded)."""
    global _answered, _retried
    _answered, _retried = answered, retried


def answered(site: str, outcome: str | int) -> None:
    """A call to ``site`` ended: "ok", the HTTP status, or the failure's class name."""
    if _answered is not None:
        _answered(site, str(outcome))


def retried(site: str) -> None:
    """A call to ``site`` is tried again (after a failure or a Retry-After)."""
    if _retried is not None:
        _retried(site)
