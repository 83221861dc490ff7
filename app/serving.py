"""Connection limits for uvicorn, however the server is started.

uvicorn (0.54) leaves three doors open that an ASGI app cannot close from inside:

* with httptools (its default parser) a request head of any size is read into memory;
* a connection that never sends a complete request head stays open for ever (the keep-alive
  timer only starts after a first response), so idle connections pile up;
* nothing bounds the number of connections: a flood of idle ones uses up every file descriptor
  and then nobody, ``/v1/health`` included, gets an answer.

``guard_uvicorn`` wraps a few methods of uvicorn's HTTP protocol classes (httptools and h11) so
that: a request head larger than ``max_header_bytes`` gets ``431`` and the connection closes (the
head is measured up to its blank line, so a body arriving in the same read is not counted, and a
large head arriving in one read is); a head not complete within ``header_timeout`` closes the
connection; a body not complete within ``body_timeout`` after its head gets ``408`` and the
connection closes; and beyond ``max_connections`` the longest-idle connections are closed first,
so fresh requests keep getting answers during a flood. Idle means: still sending a request (head
or body), or waiting for the next one; a request being answered is never idle. It runs when the
app is created, which is before uvicorn accepts the first connection whether it was started by
``jmbooru serve``, ``uvicorn app.main:app``, gunicorn's uvicorn worker or the Dockerfile. (A
subclass passed as ``--http`` would only cover the first of those.)

WebSockets leave uvicorn's HTTP protocol once upgraded, so they cannot be evicted here: the
socket endpoints (``app.api.ws``) admit at most ``websocket_capacity()`` of them, which leaves
room under the cap for HTTP.
"""

from __future__ import annotations

import gc
import json
import logging
import re
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
    body_timeout: float = 10.0


LIMITS = Limits()
# Per server (uvicorn's ServerState): idle connections (sending a request, or between requests),
# oldest first.
_idle: weakref.WeakKeyDictionary[Any, OrderedDict[Any, float]] = weakref.WeakKeyDictionary()
_last_warning: dict[str, float] = {}
# The blank line that ends a request head (h11 also accepts bare LF line ends).
_HEAD_END = re.compile(rb"\r?\n\r?\n")
_LEADING_BLANK_LINES = re.compile(rb"[\r\n]*")  # parsers skip them before a request line
HEAD, BODY = "head", "body"


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


def configure(max_header_bytes: int, header_timeout: float, max_connections: int = 0,
              body_timeout: float = 10.0) -> Limits:
    """Set the limits; ``max_connections`` 0 means: what the file-descriptor limit allows, less a
    reserve for upstream sockets, archives and the job store."""
    if max_connections <= 0:
        max_connections = max(64, raise_fd_limit() - 256)
    LIMITS.max_header_bytes = max_header_bytes
    LIMITS.header_timeout = header_timeout
    LIMITS.max_connections = max_connections
    LIMITS.body_timeout = body_timeout
    return LIMITS


def websocket_capacity() -> int:
    """How many WebSockets may be open at once: the connection cap less a tenth (at least 8) kept
    for HTTP, so that sockets, which cannot be evicted, never starve ``/v1/health``."""
    return max(1, LIMITS.max_connections - max(8, LIMITS.max_connections // 10))


def warn_rarely(message: str, *args: Any) -> None:
    """Log a warning at most every 10 s per message: a flood must not flood the log too."""
    now = time.monotonic()
    if now - _last_warning.get(message, -60.0) > 10:
        _last_warning[message] = now
        log.warning(message, *args)


def _idle_of(proto: Any) -> OrderedDict[Any, float]:
    return _idle.setdefault(proto.server_state, OrderedDict())


def _phase(proto: Any) -> str | None:
    return getattr(proto, "_jmb_phase", None)


def _waiting_head(proto: Any) -> bool:
    return _phase(proto) == HEAD


def _enter(proto: Any, phase: str) -> None:
    """The connection now waits for the client (a request head or its body): time it, and make it
    evictable. It keeps its place in the idle order from the start of its request."""
    _cancel_timer(proto)
    proto._jmb_phase = phase
    if phase == HEAD:
        proto._jmb_head_bytes = 0
        proto._jmb_head_tail = b""
        seconds, expired = LIMITS.header_timeout, _head_timed_out
    else:
        seconds, expired = LIMITS.body_timeout, _body_timed_out
    proto._jmb_timer = proto.loop.call_later(seconds, expired, weakref.ref(proto))
    idle = _idle_of(proto)
    if proto not in idle:
        idle[proto] = time.monotonic()


def _leave(proto: Any) -> None:
    """The client has sent what was asked of it (or is gone): no timer, not evictable."""
    proto._jmb_phase = None
    _cancel_timer(proto)
    _idle_of(proto).pop(proto, None)


def _cancel_timer(proto: Any) -> None:
    timer = getattr(proto, "_jmb_timer", None)
    if timer is not None:
        timer.cancel()
        proto._jmb_timer = None


def _upgraded(proto: Any) -> bool:
    """The transport now belongs to a WebSocket protocol: this HTTP protocol must not touch it."""
    return proto.transport.get_protocol() is not proto


def _head_timed_out(ref: weakref.ref[Any]) -> None:
    proto = ref()
    if proto is not None and _waiting_head(proto) and not proto.transport.is_closing():
        warn_rarely("closing connections that sent no complete request within %.0f s", LIMITS.header_timeout)
        _leave(proto)
        proto.transport.close()


def _body_timed_out(ref: weakref.ref[Any]) -> None:
    proto = ref()
    if proto is None or _phase(proto) != BODY or proto.transport.is_closing() or _upgraded(proto):
        return
    warn_rarely("closing connections whose request body did not arrive within %.0f s", LIMITS.body_timeout)
    _leave(proto)
    cycle = getattr(proto, "cycle", None)
    if cycle is not None and not cycle.response_started:
        # The app, waiting for the body, only wakes on connection_lost, so it writes nothing after this.
        _send_error(proto, 408, "Request Timeout", f"The request body did not arrive within "
                    f"{LIMITS.body_timeout:g} s; send it faster, or send a smaller one.")
    else:
        proto.transport.close()


def _send_error(proto: Any, status: int, reason: str, detail: str) -> None:
    body = json.dumps({"detail": detail}).encode()
    head = (f"HTTP/1.1 {status} {reason}\r\ncontent-type: application/json\r\n".encode()
            + b"connection: close\r\ncontent-length: " + str(len(body)).encode() + b"\r\n\r\n")
    proto.transport.write(head + body)
    proto.transport.close()


def _send_431(proto: Any) -> None:
    _leave(proto)
    _send_error(proto, 431, "Request Header Fields Too Large", f"The request headers are larger than this "
                f"server accepts ({LIMITS.max_header_bytes} bytes); send fewer or smaller headers.")


def _evict_for(proto: Any) -> None:
    """Over the cap: close the longest-idle connections (never one whose request is being answered)."""
    connections = proto.connections
    idle = _idle_of(proto)
    while len(connections) > LIMITS.max_connections and idle:
        oldest, _ = idle.popitem(last=False)
        if oldest is proto:
            idle[proto] = time.monotonic()
            if len(idle) == 1:
                break
            continue
        warn_rarely("more than %d connections: closing the longest-idle ones", LIMITS.max_connections)
        _leave(oldest)
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
    _enter(self, HEAD)
    _evict_for(self)


def _closed(self: Any, exc: Any) -> None:
    _leave(self)


def _count_head_bytes(self: Any, data: bytes) -> bool:
    """Before parsing: refuse (True) when the head awaited so far, up to its blank line if this
    read holds it, is too large. Body bytes in the same read are not head bytes."""
    if not _waiting_head(self):
        return False
    seen, tail = self._jmb_head_bytes, self._jmb_head_tail
    end = _head_end_in(data, tail, first=seen == 0)
    size = seen + len(data) if end < 0 else seen + end
    if size > LIMITS.max_header_bytes:
        _send_431(self)
        return True
    self._jmb_head_bytes = seen + len(data)
    self._jmb_head_tail = (tail + data[-3:])[-3:]
    return False


def _head_end_in(data: bytes, tail: bytes, first: bool) -> int:
    """Where the request head ends in this read (just past its blank line), or -1. ``tail`` is the
    end of the previous read of the same head, as the blank line may straddle two reads."""
    if first:
        skipped = _LEADING_BLANK_LINES.match(data)
        found = _HEAD_END.search(data, skipped.end() if skipped else 0)
        return found.end() if found else -1
    straddling = _HEAD_END.search(tail + data[:3])
    if straddling is not None:
        return straddling.end() - len(tail)
    found = _HEAD_END.search(data)
    return found.end() if found else -1


def _check_head_size(self: Any, data: bytes) -> None:
    """After parsing: a head still incomplete beyond the limit is refused."""
    if _waiting_head(self) and self._jmb_head_bytes > LIMITS.max_header_bytes \
            and not self.transport.is_closing():
        _send_431(self)


def _has_body(headers: list[tuple[bytes, bytes]]) -> bool:
    return any(name == b"transfer-encoding" or (name == b"content-length" and value.strip() != b"0")
               for name, value in headers)


def _httptools_headers_complete(self: Any) -> bool:
    # A WebSocket upgrade has no body, and the connection leaves HTTP for good.
    if not self.parser.should_upgrade() and _has_body(self.headers):
        _enter(self, BODY)  # until on_message_complete
    else:
        _leave(self)
    return False  # go on with uvicorn's own handling


def _body_done(self: Any) -> None:
    """The whole body is here: the request is being answered, or, when the app answered before
    reading all of it, the next request head is awaited."""
    cycle = getattr(self, "cycle", None)
    if cycle is not None and cycle.response_complete:
        _enter(self, HEAD)
    else:
        _leave(self)


def _httptools_message_complete(self: Any) -> None:
    if _phase(self) == BODY:
        _body_done(self)


def _h11_after_events(self: Any) -> None:
    import h11

    phase = _phase(self)
    if phase is None:
        return  # a request being answered: _response_done starts the wait for the next head
    if _upgraded(self):
        _leave(self)
        return
    state = self.conn.their_state
    if state is h11.SEND_BODY:
        if phase == HEAD:
            _enter(self, BODY)
    elif state is h11.IDLE:
        if phase == BODY:  # the body ended after the answer, and h11 started the next cycle
            _enter(self, HEAD)
    else:
        _leave(self)  # the whole request is here


def _response_done(self: Any) -> None:
    if self.transport.is_closing() or _phase(self) == BODY:
        return  # the body still coming is timed; the next head is awaited once it is all here
    conn = getattr(self, "conn", None)  # h11: a pipelined request may already be parsed
    cycle = getattr(self, "cycle", None)
    if conn is not None:
        import h11

        if conn.their_state is not h11.IDLE:
            return
    elif cycle is not None and not cycle.response_complete:
        return  # httptools started a pipelined request
    _enter(self, HEAD)


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


# The uvicorn minor versions whose private protocol methods the guard below was tested against
# (pyproject.toml pins the same range). Any other version is left alone, with one warning.
TESTED_UVICORN = ("0.55",)


def uvicorn_tested(version: str) -> bool:
    return ".".join(version.split(".")[:2]) in TESTED_UVICORN


def guard_uvicorn() -> bool:
    """Wrap uvicorn's HTTP protocols once per process (see the module docstring). Called when the
    application starts serving (its lifespan), so that importing ``app.main`` patches nothing.
    Returns whether the limits are in force."""
    import uvicorn

    if not uvicorn_tested(uvicorn.__version__):
        log.warning("uvicorn %s is not a version jmbooru's connection limits were tested with (%s); they are "
                    "off: header, body and idle-connection limits are uvicorn's own", uvicorn.__version__,
                    ", ".join(f"{v}.x" for v in TESTED_UVICORN))
        return False
    for cls in _protocol_classes():
        if getattr(cls, "_jmbooru_guarded", False):
            continue
        cls._jmbooru_guarded = True
        _wrap(cls, "connection_made", after=_opened)
        _wrap(cls, "connection_lost", after=_closed)
        _wrap(cls, "on_response_complete", after=_response_done)
        if cls.__name__ == "HttpToolsProtocol":
            _wrap(cls, "data_received", before=_count_head_bytes, after=_check_head_size)
            _wrap(cls, "on_headers_complete", before=_httptools_headers_complete)
            _wrap(cls, "on_message_complete", after=_httptools_message_complete)
        else:
            _wrap(cls, "data_received", before=_count_head_bytes)
            _wrap(cls, "handle_events", after=_h11_after_events)
    return True


def freeze_startup_heap() -> None:
    """Keep what start-up allocated (modules, the app, clients) out of every later collection.

    Full collections walk every tracked object; most of them were made at start-up and live for
    ever, and walking them paused the event loop for 40-80 ms (the whole of /v1/health's p99).
    Frozen objects are skipped. A higher first threshold makes young collections rarer too.
    """
    gc.collect()
    gc.freeze()
    gc.set_threshold(10_000, 20, 20)
