"""A job in flight when the process dies: the restarted server fails it clearly and cleans up."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
from pathlib import Path

import httpx

from tests.conftest import free_port, wait_for, wait_serving
from tests.fakes.jm import FakeAlbum, JmDouble
from tests.wsclient import follow

ROOT = Path(__file__).resolve().parent.parent


def start_server(data_dir: Path, jm: JmDouble, port: int, log: Path, **extra: str) -> subprocess.Popen[bytes]:
    env = {
        **os.environ,
        "PYTHONPATH": str(ROOT),
        "JMBOORU_DATA_DIR": str(data_dir),
        "JMBOORU_JM_API_DOMAINS": jm.host,
        "JMBOORU_JM_IMAGE_DOMAINS": jm.host,
        "JMBOORU_JM_SCHEME": "http",
        "JMBOORU_REDIS_URL": "",
        # These tests stop a server mid-download: 4 pages at a time keep the albums running long enough.
        "JMBOORU_ALBUM_IMAGE_THREADS": "4",
        **extra,
    }
    proc = subprocess.Popen(
        [sys.executable, "-m", "uvicorn", "app.main:app", "--port", str(port), "--log-level", "warning"],
        env=env, cwd=ROOT, stdout=log.open("ab"), stderr=subprocess.STDOUT,
    )
    wait_serving(f"http://127.0.0.1:{port}", proc, log=log)
    return proc


async def test_restart_fails_the_job_that_was_running_and_removes_its_files(
    tmp_path: Path, jm_double: JmDouble
) -> None:
    jm_double.add_album(FakeAlbum.single("190500", "Interrupted", 40))
    jm_double.set_latency(0.2, "/media/photos")
    data = tmp_path / "data"
    port = free_port()
    server = start_server(data, jm_double, port, tmp_path / "server.log")
    base = f"http://127.0.0.1:{port}"
    try:
        async with httpx.AsyncClient(base_url=base) as http:
            job_id = (await http.post("/v1/download/album/190500", json={"client_id": "phone"})).json()["job_id"]
            async def under_way() -> bool:
                return bool((await http.get(f"/v1/jobs/{job_id}")).json()["done"] >= 2)

            await wait_for(under_way, timeout=20)
        assert any((data / "work" / job_id).rglob("*.webp"))
        server.send_signal(signal.SIGKILL)
        server.wait(timeout=10)
        server = start_server(data, jm_double, port, tmp_path / "server.log")
        async with httpx.AsyncClient(base_url=base) as http:
            job = (await http.get(f"/v1/jobs/{job_id}")).json()
        assert job["state"] == "failed"
        assert "restarted" in job["error"]
        assert not (data / "work" / job_id).exists()
        # The client that started it hears about the failure when it reconnects.
        frames = await follow(f"ws://127.0.0.1:{port}/ws/notifications/phone", timeout=5)
        assert frames[0]["event"] == "failed" and frames[0]["job_id"] == job_id
    finally:
        server.terminate()
        server.wait(timeout=15)


async def test_graceful_shutdown_ends_running_jobs_clearly(tmp_path: Path, jm_double: JmDouble) -> None:
    jm_double.add_album(FakeAlbum.single("190501", "Shut Down", 80))
    jm_double.set_latency(0.5, "/media/photos")
    data = tmp_path / "data"
    port = free_port()
    server = start_server(data, jm_double, port, tmp_path / "server.log", JMBOORU_SHUTDOWN_GRACE_SECONDS="0.5")
    base = f"http://127.0.0.1:{port}"
    try:
        async with httpx.AsyncClient(base_url=base) as http:
            job_id = (await http.post("/v1/download/album/190501")).json()["job_id"]
            follower = asyncio.create_task(follow(f"ws://127.0.0.1:{port}/ws/jobs/{job_id}", timeout=30))

            async def running() -> bool:  # shut down mid-download, not before it starts
                return bool((await http.get(f"/v1/jobs/{job_id}")).json()["done"] >= 1)

            await wait_for(running, timeout=20)
            server.send_signal(signal.SIGTERM)
            frames = await follower
            # uvicorn re-raises the signal after its graceful shutdown, so -SIGTERM is a clean exit.
            assert server.wait(timeout=30) in (0, -signal.SIGTERM)
            # uvicorn closes sockets with 1012 (service restart) before the app shuts down:
            # the client reconnects and gets the job's final state then.
            assert frames[-1] == {"event": "closed", "code": 1012}
            assert not (data / "work" / job_id).exists()
            assert not list((data / "archives").glob("*.part"))
            server = start_server(data, jm_double, port, tmp_path / "server.log")
            frames = await follow(f"ws://127.0.0.1:{port}/ws/jobs/{job_id}", timeout=10)
            assert [f["event"] for f in frames] == ["snapshot", "failed"]
            assert "shut down" in frames[-1]["message"]
    finally:
        server.terminate()
        server.wait(timeout=15)
