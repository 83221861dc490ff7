"""Slow clients against a real uvicorn over raw sockets: bodies that trickle are timed out, a cap
full of slow requests or WebSockets still leaves room for /v1/health, and one client id cannot
hold more than its share of sockets."""

from __future__ import annotations

import asyncio
import json
import socket
import time
from pathlib import Path

import httpx
import pytest
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidStatus

from tests.conftest import LiveServer, make_settings, wait_for
from tests.fakes.jm import JmDouble
from tests.wsclient import FINAL

KEY = "slow-test-key-0123456789"


def slow_post(port: int, declared: int = 1000) -> socket.socket:
    """A POST whose head is complete and whose body has only just begun."""
    sock = socket.create_connection(("127.0.0.1", port), timeout=10)
    sock.sendall(b"POST /v1/download/booru/safebooru HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
                 + f"X-API-Key: {KEY}\r\nContent-Length: {declared}\r\n\r\n".encode() + b'{"tags": "')
    return sock


def trickle_until_closed(sock: socket.socket, every: float, limit: float) -> tuple[float, bytes]:
    """Send one byte every ``every`` seconds until the server ends the request; returns how long
    that took and what the server said."""
    started = time.monotonic()
    said = b""
    sock.settimeout(every)
    while time.monotonic() - started < limit:
        try:
            sock.sendall(b"a")
            chunk = sock.recv(65536)
        except TimeoutError:
            continue
        except OSError:
            break
        said += chunk
        if not chunk:
            break
    return time.monotonic() - started, said


@pytest.mark.parametrize("http", ["httptools", "h11"])
def test_a_trickling_body_is_ended_with_408(tmp_path: Path, jm_double: JmDouble, http: str) -> None:
    settings = make_settings(tmp_path, jm_double, api_key=KEY, body_timeout_seconds=1)
    with LiveServer(settings, http=http) as live:
        took, said = trickle_until_closed(slow_post(live.port), every=0.25, limit=15)
        assert took < 6, f"a trickling body was served for {took:.1f} s"
        assert said.startswith(b"HTTP/1.1 408"), said[:300]
        assert b"did not arrive within 1 s" in said
        assert httpx.get(f"{live.url}/v1/health").status_code == 200


def test_a_body_of_one_byte_every_2_s_is_ended_within_15_s_at_the_defaults(
        tmp_path: Path, jm_double: JmDouble) -> None:
    settings = make_settings(tmp_path, jm_double, api_key=KEY)  # JMBOORU_BODY_TIMEOUT_SECONDS: 10
    with LiveServer(settings) as live:
        took, said = trickle_until_closed(slow_post(live.port), every=2, limit=30)
    assert took < 15, f"a trickling body was served for {took:.1f} s"
    assert said.startswith(b"HTTP/1.1 408"), said[:300]


def health_answers(url: str, tries: int = 10) -> int:
    """How many of ``tries`` health requests, each on a new connection, get 200."""
    answered = 0
    for _ in range(tries):
        try:
            answered += httpx.get(f"{url}/v1/health", timeout=5).status_code == 200
        except httpx.HTTPError:
            pass
    return answered


@pytest.mark.parametrize("http", ["httptools", "h11"])
def test_a_cap_full_of_slow_posts_still_answers_health(tmp_path: Path, jm_double: JmDouble, http: str) -> None:
    settings = make_settings(tmp_path, jm_double, api_key=KEY, max_connections=40, body_timeout_seconds=60,
                             header_timeout_seconds=60)
    with LiveServer(settings, http=http) as live:
        slow = [slow_post(live.port) for _ in range(50)]  # more than the cap, none ever finishing
        assert health_answers(live.url) >= 9
        # And while the slow clients come back as soon as they are closed.
        for index, sock in enumerate(slow):
            sock.close()
            slow[index] = slow_post(live.port)
        assert health_answers(live.url) >= 9
        for sock in slow:
            sock.close()


def test_a_cap_full_of_websockets_still_answers_health(tmp_path: Path, jm_double: JmDouble) -> None:
    settings = make_settings(tmp_path, jm_double, max_connections=40)

    async def scenario(live: LiveServer) -> None:
        opened: list[ClientConnection] = []
        refused: list[int] = []
        for n in range(50):  # one socket per client id, more than the cap
            try:
                opened.append(await connect(f"{live.ws_url}/ws/notifications/client-{n}", compression=None))
            except InvalidStatus as exc:
                refused.append(exc.response.status_code)
        assert refused and set(refused) == {503}, refused
        assert await asyncio.to_thread(health_answers, live.url) >= 9
        for ws in opened:  # the sockets that were let in are still served
            await asyncio.wait_for(ws.ping(), 5)
            await ws.close()
        # Once they are gone, new sockets are let in again.
        async with connect(f"{live.ws_url}/ws/notifications/later", compression=None) as ws:
            await ws.ping()

    with LiveServer(settings) as live:
        asyncio.run(scenario(live))


async def test_sockets_beyond_the_per_client_limit_are_closed_with_1008_and_the_rest_get_finals(
        live: LiveServer) -> None:
    limit = 16  # the default JMBOORU_MAX_SOCKETS_PER_CLIENT
    sockets = [await connect(f"{live.ws_url}/ws/notifications/greedy", compression=None) for _ in range(limit)]
    extra = await connect(f"{live.ws_url}/ws/notifications/greedy", compression=None)
    with pytest.raises(ConnectionClosed) as closed:
        await asyncio.wait_for(extra.recv(), 5)
    assert closed.value.rcvd is not None and closed.value.rcvd.code == 1008
    assert "already has 16 sockets open" in closed.value.rcvd.reason
    # Another client id is not affected.
    async with connect(f"{live.ws_url}/ws/notifications/modest", compression=None) as other:
        await other.ping()

    async with httpx.AsyncClient(base_url=live.url) as http:
        started = await http.post("/v1/download/album/100003", json={"client_id": "greedy"})
    assert started.status_code == 202, started.text

    async def final_of(ws: ClientConnection) -> dict[str, object]:
        while True:
            frame = json.loads(await ws.recv())
            if frame.get("event") in FINAL:
                return dict(frame)

    finals = await asyncio.wait_for(asyncio.gather(*(final_of(ws) for ws in sockets)), 30)
    assert all(f["event"] == "download_ready" and f["job_id"] == started.json()["job_id"] for f in finals), finals
    for ws in sockets:
        await ws.close()
    # A closed socket frees its place (once the server's handler has seen it go).
    held = live.app.state.open_sockets.per_client
    await wait_for(lambda: held.get("greedy", 0) == 0, message=lambda: f"the server still holds {held} sockets")
    async with connect(f"{live.ws_url}/ws/notifications/greedy", compression=None) as again:
        await again.ping()
