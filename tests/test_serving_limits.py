"""Limits that hold however the server is started: request head size, idle connections, a flood
of connections, forwarded headers only from trusted proxies, no secret in the logs."""

from __future__ import annotations

import asyncio
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from websockets.asyncio.client import connect

from tests.conftest import LiveServer, free_port, make_settings, wait_for, wait_serving
from tests.fakes.jm import JmDouble

ROOT = Path(__file__).resolve().parent.parent


def open_socket(port: int) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", port), timeout=10)
    return sock


def closed_within(sock: socket.socket, seconds: float) -> bool:
    """True when the server closes ``sock`` within ``seconds`` (whatever it says first)."""
    sock.settimeout(seconds)
    try:
        while sock.recv(65536):
            pass
        return True
    except TimeoutError:
        return False
    except OSError:
        return True


@pytest.mark.parametrize("http", ["httptools", "h11"])
def test_oversized_request_head_is_refused_early(tmp_path: Path, jm_double: JmDouble, http: str) -> None:
    settings = make_settings(tmp_path, jm_double, max_header_bytes=16 * 1024)
    with LiveServer(settings, http=http) as live:
        sock = open_socket(live.port)
        sock.sendall(b"GET /v1/health HTTP/1.1\r\nHost: x\r\n")
        sent = 0
        filler = b"X-Filler: " + b"a" * 8000 + b"\r\n"
        try:
            while sent < 64 * 1024 * 1024:
                sock.sendall(filler)
                sent += len(filler)
        except OSError:
            pass  # the server hung up: the point
        answer = b""
        sock.settimeout(5)
        try:
            while chunk := sock.recv(65536):
                answer += chunk
        except OSError:
            pass
        sock.close()
        assert sent < 8 * 1024 * 1024, "the server kept reading a huge head"
        assert answer.split(b" ", 2)[1] in (b"431", b"400"), answer[:200]
        if http == "httptools":
            assert b"431" in answer.split(b"\r\n", 1)[0] and b"larger than this server accepts" in answer
        # And the server still answers normal requests.
        assert httpx.get(f"{live.url}/v1/health").status_code == 200


@pytest.mark.parametrize("http", ["httptools", "h11"])
def test_connections_that_send_nothing_or_dribble_are_closed(tmp_path: Path, jm_double: JmDouble, http: str) -> None:
    settings = make_settings(tmp_path, jm_double, header_timeout_seconds=0.6)
    with LiveServer(settings, http=http) as live:
        silent = open_socket(live.port)
        dribbling = open_socket(live.port)
        started = time.monotonic()
        for byte in b"GET /v1/health HTTP/1.1\r\nHost: x":
            dribbling.sendall(bytes([byte]))
            if time.monotonic() - started > 0.3:
                break
        assert closed_within(silent, 5)
        assert closed_within(dribbling, 5)
        assert time.monotonic() - started < 5
        # A keep-alive connection is also closed when its next request head never completes.
        kept = open_socket(live.port)
        kept.sendall(b"GET /v1/health HTTP/1.1\r\nHost: x\r\n\r\n")
        kept.settimeout(5)
        assert kept.recv(65536).startswith(b"HTTP/1.1 200")
        kept.sendall(b"GET /v1/health HTTP/1.1\r\n")
        assert closed_within(kept, 5)


def test_health_answers_during_an_idle_connection_flood_that_stops_by_itself(
    tmp_path: Path, jm_double: JmDouble
) -> None:
    settings = make_settings(tmp_path, jm_double, max_connections=60, header_timeout_seconds=3)
    with LiveServer(settings) as live:
        flood = [open_socket(live.port) for _ in range(300)]
        started = time.monotonic()
        for _ in range(5):
            resp = httpx.get(f"{live.url}/v1/health", timeout=5)
            assert resp.status_code == 200
        assert time.monotonic() - started < 5
        # The flood is gone by itself: every idle connection is closed by the server.
        assert all(closed_within(sock, 10) for sock in flood)
        for sock in flood:
            sock.close()


def test_websockets_and_requests_in_flight_are_not_evicted(tmp_path: Path, jm_double: JmDouble) -> None:
    settings = make_settings(tmp_path, jm_double, max_connections=40, header_timeout_seconds=5)
    jm_double.set_latency(1.0, "/search")

    async def scenario(live: LiveServer) -> None:
        async with connect(f"{live.ws_url}/ws/notifications/steady", compression=None) as ws:
            async with httpx.AsyncClient(base_url=live.url, timeout=20) as http:
                slow = asyncio.create_task(http.get("/v1/search/slow/1"))
                await wait_for(lambda: jm_double.hits("/search") > 0)  # the slow request is in flight
                flood = [open_socket(live.port) for _ in range(100)]
                assert (await slow).status_code == 200
                await ws.ping()  # the socket survived the flood
                for sock in flood:
                    sock.close()

    with LiveServer(settings) as live:
        asyncio.run(scenario(live))


def start_serve(tmp_path: Path, jm: JmDouble, **env: str) -> tuple[subprocess.Popen[bytes], int, Path]:
    port = free_port()
    log = tmp_path / "serve.log"
    proc = subprocess.Popen(
        [sys.executable, "-m", "app.cli", "serve", "--port", str(port), "--log-level", "info"],
        cwd=ROOT, stdout=log.open("wb"), stderr=subprocess.STDOUT,
        env={**os.environ, "PYTHONPATH": str(ROOT), "JMBOORU_DATA_DIR": str(tmp_path / "data"),
             "JMBOORU_JM_API_DOMAINS": jm.host, "JMBOORU_JM_IMAGE_DOMAINS": jm.host, "JMBOORU_JM_SCHEME": "http",
             "JMBOORU_REDIS_URL": "", **env},
    )
    wait_serving(f"http://127.0.0.1:{port}", proc, log=log)
    return proc, port, log


def test_serve_trusts_forwarded_headers_only_from_configured_proxies_and_logs_no_key(
    tmp_path: Path, jm_double: JmDouble
) -> None:
    key = "k3y-Very-Secret-1234"
    proc, port, log = start_serve(tmp_path, jm_double, JMBOORU_API_KEY=key,
                                  JMBOORU_FORWARDED_ALLOW_IPS="10.9.8.7")
    try:
        base = f"http://127.0.0.1:{port}"
        httpx.get(f"{base}/v1/health", headers={"X-Forwarded-For": "6.6.6.6"})
        assert httpx.get(f"{base}/v1/jobs/nope?api_key={key}").status_code == 404
        assert httpx.get(f"{base}/v1/jobs/nope", headers={"X-API-Key": key}).status_code == 404

        async def socket_with_key() -> None:
            async with connect(f"ws://127.0.0.1:{port}/ws/notifications/me?api_key={key}&x=1") as ws:
                await ws.ping()

        asyncio.run(socket_with_key())
    finally:
        proc.terminate()
        proc.wait(timeout=15)
    text = log.read_text()
    assert "/v1/jobs/nope" in text and "/ws/notifications/me" in text  # the lines are there...
    assert key not in text  # ...without the key
    assert "6.6.6.6" not in text  # X-Forwarded-For from an untrusted address is ignored
