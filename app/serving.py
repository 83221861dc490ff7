"""Connection limits for uvicorn, however the server is started.

uvicorn (0.54) leaves three doors open that an ASGI app cannot close from inside:

* with httptools (its default parser) a request head of any size is read into memory;
* a connection that never sends a complete request head stays open for ever (the keep-alive
  timer only starts after a first response), so idle connections pile up;
* nothing bounds the number of connections: a flood of idle ones uses up every file descriptor
  and then nobody, ``/v1/health`` included, gets an answer.

``guard_uvicorn`` wraps four methods of uvicorn's HTTP protocol classes (httptools and h11) so
that: a request head larger than ``max_header_bytes`` gets ``431`` and the connection closes; a
head not complete within ``header_timeout`` closes the connection; and beyond
``max_connections`` the longest-idle connections (no request in flight) are closed first, so
fresh requests keep getting answers during a flood. It runs when the app is created, which is
before uvicorn accepts the first connection whether it was started by ``jmbooru serve``,
``uvicorn app.main:app``, gunicorn's uvicorn worker or the Dockerfile. (A subclass passed as
``--http`` would only cover the first of those.)
"""

from __future__ import annotations

import gc
import json
import logging
import resource
import time
import weakref
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

log = logging.getLogger("jmbooru.serving")


@dataclass
class Limits:
    max_header_bytes: int = 32 * 1024
    header_timeout: float = 10.0
    max_connections: int = 4096


LIMITS = Limits()
# Per server (uvicorn's ServerState): connections waiting for a request head, oldest first.
_idle: weakref.WeakKeyDictionary[Any, OrderedDict[Any, float]] = weakref.WeakKeyDictionary()
_last_warning = 0.0


def raise_fd_limit() -> int:
    """Raise this process's open-file limit to its hard limit; returns the soft limit now in force."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY or hard > soft:
        target = hard if hard != resource.RLIM_INFINITY else max(soft, 65536)
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
            soft = target
        except (ValueError, OSError):
            pass
    return soft


def configure(max_header_bytes: int, header_timeout: float, max_connections: int = 0) -> Limits:
    """Set the limits; ``max_connections`` 0 means: what the file-descriptor limit allows, less a
    reserve for upstream sockets, archives and the job store."""
    if max_connections <= 0:
        max_connections = max(64, raise_fd_limit() - 256)
    LIMITS.max_header_bytes = max_header_bytes
    LIMITS.header_timeout = header_timeout
    LIMITS.max_connections = max_connections
    return LIMITS


def _warn(message: str, *args: Any) -> None:
    global _last_warning
    now = time.monotonic()
    if now - _last_warning > 10:  # a flood must not flood the log too
        _last_warning = now
        log.warning(message, *args)


def _idle_of(proto: Any) -> OrderedDict[Any, float]:
    return _idle.setdefault(proto.server_state, OrderedDict())


def _head_started(proto: Any) -> None:
    """A request head is awaited: start counting its bytes and its time."""
    proto._jmb_head_bytes = 0
    proto._jmb_waiting_head = True
    timer = getattr(proto, "_jmb_head_timer", None)
    if timer is not None:
        timer.cancel()
    proto._jmb_head_timer = proto.loop.call_later(LIMITS.header_timeout, _head_timed_out, weakref.ref(proto))
    _idle_of(proto)[proto] = time.monotonic()


def _head_done(proto: Any) -> None:
    proto._jmb_waiting_head = False
    timer = getattr(proto, "_jmb_head_timer", None)
    if timer is not None:
        timer.cancel()
        proto._jmb_head_timer = None
    _idle_of(proto).pop(proto, None)


def _head_timed_out(ref: weakref.ref[Any]) -> None:
    proto = ref()
    if proto is not None and getattr(proto, "_jmb_waiting_head", False) and not proto.transport.is_closing():
        _warn("closing connections that sent no complete request within %.0f s", LIMITS.header_timeout)
        proto.transport.close()


def _send_431(proto: Any) -> None:
    body = json.dumps({"detail": f"The request headers are larger than this server accepts "
                                 f"({LIMITS.max_header_bytes} bytes); send fewer or smaller headers."}).encode()
    head = (b"HTTP/1.1 431 Request Header Fields Too Large\r\ncontent-type: application/json\r\n"
            b"connection: close\r\ncontent-length: " + str(len(body)).encode() + b"\r\n\r\n")
    proto.transport.write(head + body)
    proto.transport.close()


def _evict_for(proto: Any) -> None:
    """Over the cap: close the longest-idle connections (never one with a request in flight)."""
    connections = proto.connections
    idle = _idle_of(proto)
    while len(connections) > LIMITS.max_connections and idle:
        oldest, _ = idle.popitem(last=False)
        if oldest is proto:
            idle[proto] = time.monotonic()
            if len(idle) == 1:
                break
            continue
        _warn("more than %d connections: closing the longest-idle ones", LIMITS.max_connections)
        oldest._jmb_waiting_head = False
        oldest.transport.close()
    if len(connections) > LIMITS.max_connections:
        proto.transport.close()


def _wrap(cls: Any, name: str, after: Callable[..., Any] | None = None,
          before: Callable[..., bool] | None = None) -> None:
    original = getattr(cls, name)

    def method(self: Any, *args: Any) -> Any:
        if before is not None and before(self, *args):
            return None
        result = original(self, *args)
        if after is not None:
            after(self, *args)
        return result

    method.__name__ = name
    method.__wrapped__ = original  # type: ignore[attr-defined]
    setattr(cls, name, method)


def _opened(self: Any, transport: Any) -> None:
    _head_started(self)
    _evict_for(self)


def _closed(self: Any, exc: Any) -> None:
    _head_done(self)


def _count_head_bytes(self: Any, data: bytes) -> bool:
    """Before parsing: refuse (True) when the head awaited so far is too large."""
    if getattr(self, "_jmb_waiting_head", False):
        self._jmb_head_bytes = getattr(self, "_jmb_head_bytes", 0) + len(data)
        if self._jmb_head_bytes > LIMITS.max_header_bytes + 65536:  # head plus one read of body
            _head_done(self)
            _send_431(self)
            return True
    return False


def _check_head_size(self: Any, data: bytes) -> None:
    """After parsing: a head still incomplete beyond the limit is refused."""
    if getattr(self, "_jmb_waiting_head", False) and self._jmb_head_bytes > LIMITS.max_header_bytes \
            and not self.transport.is_closing():
        _head_done(self)
        _send_431(self)


def _h11_after_events(self: Any) -> None:
    import h11

    if getattr(self, "_jmb_waiting_head", False) and self.conn.their_state is not h11.IDLE:
        _head_done(self)


def _response_done(self: Any) -> None:
    if not self.transport.is_closing():
        _head_started(self)


def _protocol_classes() -> list[Any]:
    classes: list[Any] = []
    try:
        from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

        classes.append(HttpToolsProtocol)
    except ImportError:  # httptools is optional
        pass
    from uvicorn.protocols.http.h11_impl import H11Protocol

    classes.append(H11Protocol)
    return classes


def _headers_complete(self: Any) -> bool:
    _head_done(self)
    return False  # go on with uvicorn's own handling


def guard_uvicorn() -> None:
    """Wrap uvicorn's HTTP protocols once per process (see the module docstring)."""
    for cls in _protocol_classes():
        if getattr(cls, "_jmbooru_guarded", False):
            continue
        cls._jmbooru_guarded = True
        _wrap(cls, "connection_made", after=_opened)
        _wrap(cls, "connection_lost", after=_closed)
        _wrap(cls, "on_response_complete", after=_response_done)
        if cls.__name__ == "HttpToolsProtocol":
            _wrap(cls, "data_received", before=_count_head_bytes, after=_check_head_size)
            _wrap(cls, "on_headers_complete", before=_headers_complete)
        else:
            _wrap(cls, "handle_events", after=_h11_after_events)


def freeze_startup_heap() -> None:
    """Keep what start-up allocated (modules, the app, clients) out of every later collection.

    Full collections walk every tracked object; most of them were made at start-up and live for
    ever, and walking them paused the event loop for 40-80 ms (the whole of /v1/health's p99).
    Frozen objects are skipped. A higher first threshold makes young collections rarer too.
    """
    gc.collect()
    gc.freeze()
    gc.set_threshold(10_000, 20, 20)
