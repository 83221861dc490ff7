"""WebSockets: follow one job, or every job a client started."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable

from fastapi import APIRouter, WebSocket, WebSocketDisconnect
from starlette.websockets import WebSocketState

from app.api.deps import websocket_allowed
from app.errors import AppError
from app.jobs import follow
from app.jobs.events import Delivery, Frame
from app.jobs.models import FINAL_EVENTS
from app.jobs.service import JobService

router = APIRouter(tags=["websockets"])
log = logging.getLogger("jmbooru.ws")

POLICY_VIOLATION = 1008


async def _admit(ws: WebSocket) -> bool:
    allowed, reason = websocket_allowed(ws)
    if not allowed:
        # Closing before accept answers the upgrade with HTTP 403.
        log.info("websocket refused path=%s reason=%s", ws.url.path, reason)
        await ws.close(code=POLICY_VIOLATION, reason=reason)
        return False
    await ws.accept()
    return True


async def _pump(ws: WebSocket, frames: AsyncIterator[Delivery],
                on_sent: Callable[[Frame], Awaitable[None]] | None = None) -> None:
    """Send frames until they end or the client goes away (whichever comes first)."""

    async def send_all() -> None:
        async for frame, text in frames:
            await ws.send_text(text)
            if on_sent is not None:
                await on_sent(frame)

    async def until_disconnect() -> None:
        with contextlib.suppress(WebSocketDisconnect):
            while True:
                message = await ws.receive()
                if message["type"] == "websocket.disconnect":
                    return

    sender = asyncio.create_task(send_all())
    listener = asyncio.create_task(until_disconnect())
    try:
        done, _ = await asyncio.wait({sender, listener}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in (sender, listener):
            task.cancel()
        await asyncio.gather(sender, listener, return_exceptions=True)
        with contextlib.suppress(Exception):
            await frames.aclose()  # type: ignore[attr-defined]
    if sender in done and sender.exception() is not None:
        raise sender.exception()  # type: ignore[misc]


@router.websocket("/ws/jobs/{job_id}")
async def follow_job(ws: WebSocket, job_id: str) -> None:
    """A snapshot of the job, then its live events; closes after the final one."""
    if not await _admit(ws):
        return
    jobs: JobService = ws.app.state.jobs
    try:
        await jobs.get(job_id)
    except AppError as exc:
        await ws.send_json({"event": "error", "status": "error", "job_id": job_id, "message": exc.detail})
        await ws.close(code=4404)
        return
    with contextlib.suppress(WebSocketDisconnect, RuntimeError):
        await _pump(ws, follow.follow_job(jobs, job_id))
        if ws.application_state == WebSocketState.CONNECTED:
            await ws.close(code=1000)


@router.websocket("/ws/notifications/{client_id}")
async def notifications(ws: WebSocket, client_id: str) -> None:
    """The final frame of every job started with this client_id, including finals missed while
    away; with ``?progress=1`` also snapshots and progress frames."""
    if not await _admit(ws):
        return
    jobs: JobService = ws.app.state.jobs
    progress = ws.query_params.get("progress", "").lower() in ("1", "true", "yes", "on")
    grace = ws.app.state.settings.notify_replay_grace_seconds

    async def delivered(frame: Frame) -> None:
        if frame.get("event") in FINAL_EVENTS:
            await follow.mark_notified(jobs, str(frame["job_id"]), client_id)

    frames = follow.follow_client(jobs, client_id, progress=progress, replay_grace=grace)
    with contextlib.suppress(WebSocketDisconnect, RuntimeError):
        await _pump(ws, frames, delivered)
