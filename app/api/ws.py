"""WebSockets: follow one job, or every job a client started."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator

from fastapi import APIRouter, WebSocket, WebSocketDisconnect
from fastapi.responses import JSONResponse
from starlette.websockets import WebSocketState

from app import metrics, serving
from app.api.deps import websocket_allowed
from app.errors import AppError, StoreUnavailable
from app.jobs.events import Delivery, Frame
from app.jobs.frames import FINAL_EVENTS, error_frame
from app.jobs.service import JobService
from app.text import count

router = APIRouter(tags=["websockets"])
log = logging.getLogger("jmbooru.ws")

POLICY_VIOLATION = 1008
INTERNAL_ERROR = 1011
TRY_AGAIN_LATER = 1013
NOT_FOUND = 4404
STORE_AWAY_REASON = "The job store is unreachable right now; reconnect in a moment."


@contextlib.contextmanager
def _counted(endpoint: str) -> Iterator[None]:
    gauge = metrics.WEBSOCKETS_OPEN.labels(endpoint=endpoint)
    gauge.inc()
    try:
        yield
    finally:
        gauge.dec()


class OpenSockets:
    """The sockets this API process holds: in all, and per client id (notifications)."""

    def __init__(self) -> None:
        self.total = 0
        self.per_client: dict[str, int] = {}

    def hold(self, client_id: str | None) -> None:
        self.total += 1
        if client_id is not None:
            self.per_client[client_id] = self.per_client.get(client_id, 0) + 1

    def release(self, client_id: str | None) -> None:
        self.total -= 1
        if client_id is not None:
            left = self.per_client.pop(client_id, 1) - 1
            if left > 0:
                self.per_client[client_id] = left


def open_sockets(ws: WebSocket) -> OpenSockets:
    state = ws.app.state
    sockets: OpenSockets | None = getattr(state, "open_sockets", None)
    if sockets is None:
        sockets = state.open_sockets = OpenSockets()
    return sockets


async def _refuse_upgrade(ws: WebSocket) -> None:
    """HTTP 503 to the upgrade: sockets cannot be evicted, so past their share of the connection
    cap new ones wait, and HTTP keeps its room."""
    detail = "This server has as many WebSockets open as it allows; try again in a few seconds."
    try:
        await ws.send_denial_response(JSONResponse({"detail": detail}, status_code=503, headers={"Retry-After": "5"}))
    except RuntimeError:  # a server without the denial extension: a close before accept is HTTP 403
        await ws.close(code=TRY_AGAIN_LATER, reason="too many sockets open; try again later")


async def _admit(ws: WebSocket, client_id: str | None = None) -> bool:
    """Accept the socket, or refuse it (False). When True, the caller must ``release`` its slot."""
    allowed, reason = websocket_allowed(ws)
    if not allowed:
        # Closing before accept answers the upgrade with HTTP 403.
        log.info("websocket refused path=%s reason=%s", ws.url.path, reason)
        await ws.close(code=POLICY_VIOLATION, reason=reason)
        return False
    sockets = open_sockets(ws)
    if sockets.total >= serving.websocket_capacity():
        serving.warn_rarely("refusing new WebSockets (HTTP 503): %d are open, the most this server admits "
                            "under JMBOORU_MAX_CONNECTIONS", sockets.total)
        await _refuse_upgrade(ws)
        return False
    limit: int = ws.app.state.settings.max_sockets_per_client
    if client_id is not None and sockets.per_client.get(client_id, 0) >= limit:
        # The new socket is the one refused: the open ones keep receiving this client's finals.
        log.info("websocket refused path=%s reason=%d sockets for this client id", ws.url.path, limit)
        await ws.accept()
        await ws.close(code=POLICY_VIOLATION, reason=f"this client id already has {count(limit, 'socket')} open "
                                                    f"(the limit); close one first")
        return False
    sockets.hold(client_id)  # no await between the checks and this
    try:
        await ws.accept()
    except BaseException:
        sockets.release(client_id)
        raise
    return True


async def _pump(ws: WebSocket, frames: AsyncIterator[Delivery],
                on_sent: Callable[[Frame], Awaitable[None]] | None = None) -> None:
    """Send frames until they end or the client goes away (whichever comes first).

    A thousand idle sockets add up, so each costs one extra task (the sender): this handler's own
    task waits for the close, and the sender, when its frames end, interrupts that wait.
    """
    handler = asyncio.current_task()
    assert handler is not None

    async def send_all() -> None:
        async for frame, text in frames:
            await ws.send_text(text)
            if on_sent is not None:
                await on_sent(frame)

    def wake(_: asyncio.Task[None]) -> None:
        if not listening_done:
            handler.cancel()

    listening_done = False
    sender = asyncio.create_task(send_all())
    sender.add_done_callback(wake)
    try:
        while (await ws.receive())["type"] != "websocket.disconnect":
            pass  # the client has nothing to say; anything it sends is ignored
    except asyncio.CancelledError:
        if not sender.done():
            raise  # cancelled from outside (shutdown)
        handler.uncancel()  # our own wake-up: the frames ended
    finally:
        listening_done = True
        sender.cancel()
        await asyncio.gather(sender, return_exceptions=True)
        with contextlib.suppress(Exception):
            await frames.aclose()  # type: ignore[attr-defined]
    failure = None if sender.cancelled() else sender.exception()
    if failure is not None and not isinstance(failure, WebSocketDisconnect | RuntimeError):
        # Never end a socket without a close frame: the client reconnects and resumes from the
        # job record (1013 when the job store is away, 1011 for anything else).
        if isinstance(failure, StoreUnavailable):
            log.warning("websocket closed: job store away path=%s", ws.url.path)
            await _close(ws, TRY_AGAIN_LATER, STORE_AWAY_REASON)
        else:
            log.error("websocket follower failed path=%s", ws.url.path, exc_info=failure)
            await _close(ws, INTERNAL_ERROR, "The server could not follow this job; reconnect to resume.")
    elif failure is not None:
        raise failure


async def _close(ws: WebSocket, code: int, reason: str) -> None:
    if ws.application_state == WebSocketState.CONNECTED:
        with contextlib.suppress(Exception):
            await ws.close(code=code, reason=reason)


async def follow_job(ws: WebSocket) -> None:
    """A snapshot of the job, then its live events; closes after the final one."""
    job_id = str(ws.path_params["job_id"])
    if not await _admit(ws):
        return
    try:
        await _follow_job(ws, job_id)
    finally:
        open_sockets(ws).release(None)


async def _follow_job(ws: WebSocket, job_id: str) -> None:
    jobs: JobService = ws.app.state.jobs
    try:
        await jobs.get(job_id)
    except StoreUnavailable:
        await ws.close(code=TRY_AGAIN_LATER, reason=STORE_AWAY_REASON)
        return
    except AppError as exc:
        await ws.send_json(error_frame(job_id, exc.detail))
        await ws.close(code=NOT_FOUND)
        return
    with contextlib.suppress(WebSocketDisconnect, RuntimeError), _counted("jobs"):
        await _pump(ws, jobs.follow_job(job_id))
        if ws.application_state == WebSocketState.CONNECTED:
            await ws.close(code=1000)


async def notifications(ws: WebSocket) -> None:
    """The final frame of every job started with this client_id, including finals missed while
    away; with ``?progress=1`` also snapshots and progress frames."""
    client_id = str(ws.path_params["client_id"])
    if not await _admit(ws, client_id):
        return
    try:
        await _notify(ws, client_id)
    finally:
        open_sockets(ws).release(client_id)


async def _notify(ws: WebSocket, client_id: str) -> None:
    jobs: JobService = ws.app.state.jobs
    progress = ws.query_params.get("progress", "").lower() in ("1", "true", "yes", "on")
    grace = ws.app.state.settings.notify_replay_grace_seconds

    async def delivered(frame: Frame) -> None:
        if frame.get("event") in FINAL_EVENTS:
            await jobs.mark_notified(str(frame["job_id"]), client_id)

    frames = jobs.follow_client(client_id, progress=progress, replay_grace=grace)
    with contextlib.suppress(WebSocketDisconnect, RuntimeError), _counted("notifications"):
        await _pump(ws, frames, delivered)


async def unknown_socket(ws: WebSocket) -> None:
    """Any other WebSocket path: accepted, then closed with 4404 (not found), so a typo is not
    mistaken for a refused API key (a close before accepting would answer HTTP 403)."""
    await ws.accept()
    await ws.close(code=NOT_FOUND, reason="No WebSocket here: use /ws/jobs/{job_id} or /ws/notifications/{client_id}.")


# Plain Starlette routes: FastAPI's dependency machinery would cost every open socket about
# 2 KB (its exit stacks) for nothing, as these handlers take no dependencies.
router.add_websocket_route("/ws/jobs/{job_id}", follow_job)
router.add_websocket_route("/ws/notifications/{client_id}", notifications)
router.add_websocket_route("/{path:path}", unknown_socket)
