"""Scale-out mode: several API processes and job workers on a real redis-server."""

from __future__ import annotations

import asyncio
import io
import os
import signal
import subprocess
import sys
import zipfile
from pathlib import Path

import httpx
import pytest

from tests.cluster import Cluster, RedisServer
from tests.conftest import free_port, wait_for
from tests.fakes.jm import FakeAlbum, JmDouble
from tests.wsclient import follow, listen


def cluster_env(tmp_path: Path, jm: JmDouble, redis_url: str, **extra: str) -> dict[str, str]:
    env = {
        "JMBOORU_REDIS_URL": redis_url,
        "JMBOORU_DATA_DIR": str(tmp_path / "shared-data"),
        "JMBOORU_JM_API_DOMAINS": jm.host,
        "JMBOORU_JM_IMAGE_DOMAINS": jm.host,
        "JMBOORU_JM_SCHEME": "http",
        "JMBOORU_JM_RETRY_TIMES": "0",
        "JMBOORU_MAX_CONCURRENT_JOBS": "3",
        "JMBOORU_CLEANUP_INTERVAL_SECONDS": "0.5",
        "JMBOORU_JOB_LEASE_SECONDS": "3",
        "JMBOORU_DOWNLOAD_WORKERS": "4",
        "JMBOORU_ALBUM_IMAGE_THREADS": "4",
    }
    env.update(extra)
    return env


async def test_forty_clients_on_four_api_processes_all_get_their_archive(
    tmp_path: Path, jm_double: JmDouble, redis_server: RedisServer
) -> None:
    albums = [str(190100 + i) for i in range(12)]
    for aid in albums:
        jm_double.add_album(FakeAlbum.single(aid, f"Cluster Album {aid}", 3))
    jm_double.set_latency(0.02, "/media/photos")
    cluster = Cluster(tmp_path, cluster_env(tmp_path, jm_double, redis_server.url), apis=4, workers=2)
    try:
        async def one_client(i: int) -> tuple[dict, int]:
            client_id = f"client-{i}"
            # Listen on one process, start on another, fetch through a third.
            listener = await listen(f"{cluster.ws(i)}/ws/notifications/{client_id}", timeout=120)
            async with httpx.AsyncClient(base_url=cluster.url(i + 1), timeout=30) as http:
                resp = await http.post(f"/v1/download/album/{albums[i % len(albums)]}", json={"client_id": client_id})
                assert resp.status_code == 202, resp.text
            frames = await listener
            final = frames[-1]
            # What the watch app reads, whichever process it is connected to: ONE frame, the final.
            assert [f["event"] for f in frames] == ["download_ready"], frames
            async with httpx.AsyncClient(base_url=cluster.url(i + 2), timeout=30) as http:
                archive = await http.get(f"/v1/download/{final['file_name']}")
            assert archive.status_code == 200, archive.text
            with zipfile.ZipFile(io.BytesIO(archive.content)) as zf:
                assert zf.testzip() is None
                assert not [n for n in zf.namelist() if "/" in n]  # flat: the app lists no sub-folders
                return final, len([n for n in zf.namelist() if n != "cover.jpg"])

        results = await asyncio.gather(*(one_client(i) for i in range(40)))
    except BaseException:
        print(cluster.logs())
        raise
    finally:
        cluster.stop()
    assert sum(final["event"] == "download_ready" for final, _ in results) == 40
    assert all(count == 3 for _, count in results)
    # One download per album, whichever process took the request: 12 jobs, each page fetched once.
    assert len({final["job_id"] for final, _ in results}) == len(albums)
    assert jm_double.hits("/media/photos") == 3 * len(albums)


async def test_subscriber_on_another_process_gets_every_frame(
    tmp_path: Path, jm_double: JmDouble, redis_server: RedisServer
) -> None:
    jm_double.add_album(FakeAlbum.single("190300", "Cross Process", 8))
    jm_double.set_latency(0.1, "/media/photos")
    cluster = Cluster(tmp_path, cluster_env(tmp_path, jm_double, redis_server.url), apis=2, workers=1)
    try:
        async with httpx.AsyncClient(base_url=cluster.url(0)) as http:
            started = (await http.post("/v1/download/album/190300")).json()
        frames = await follow(f"{cluster.ws(1)}/ws/jobs/{started['job_id']}", timeout=60)
    finally:
        cluster.stop()
    assert frames[0]["event"] == "snapshot"
    seqs = [f["seq"] for f in frames]
    assert seqs == sorted(seqs) and len(set(seqs[1:])) == len(seqs) - 1
    assert frames[-1]["event"] == "download_ready" and frames[-1]["done"] == 8
    assert any(f["event"] == "progress" and 0 < f["done"] < 8 for f in frames)


async def test_worker_killed_mid_job_is_recovered(
    tmp_path: Path, jm_double: JmDouble, redis_server: RedisServer
) -> None:
    jm_double.add_album(FakeAlbum.single("190400", "Killed Mid Job", 30))
    jm_double.set_latency(0.15, "/media/photos")
    env = cluster_env(tmp_path, jm_double, redis_server.url, JMBOORU_ALBUM_IMAGE_THREADS="2")
    cluster = Cluster(tmp_path, env, apis=1, workers=2)
    try:
        async with httpx.AsyncClient(base_url=cluster.url(0)) as http:
            job_id = (await http.post("/v1/download/album/190400")).json()["job_id"]
            follower = asyncio.create_task(follow(f"{cluster.ws(0)}/ws/jobs/{job_id}", timeout=120))

            async def under_way() -> dict | None:
                job = (await http.get(f"/v1/jobs/{job_id}")).json()
                return job if job["state"] == "running" and job["done"] >= 3 else None

            job = await wait_for(under_way, timeout=30, message="the job never got three pages in")
            pid = int(job["worker"].rsplit(":", 1)[1])
            assert pid in [p.pid for p in cluster.worker_procs]
            os.kill(pid, signal.SIGKILL)
            frames = await follower
            final = frames[-1]
            job = (await http.get(f"/v1/jobs/{job_id}")).json()
    except BaseException:
        print(cluster.logs())
        raise
    finally:
        cluster.stop()
    assert final["event"] in ("download_ready", "failed")
    if final["event"] == "download_ready":
        assert job["attempts"] == 2 and job["worker"] != f"{job['worker'].rsplit(':', 1)[0]}:{pid}"
        assert final["done"] == 30
    else:
        assert "worker" in final["message"]
    assert job["state"] in ("ready", "failed")


async def test_idle_worker_still_takes_jobs(tmp_path: Path, jm_double: JmDouble, redis_server: RedisServer) -> None:
    """redis-py's default 5 s read timeout must not kill a worker waiting on an empty queue."""
    cluster = Cluster(tmp_path, cluster_env(tmp_path, jm_double, redis_server.url), apis=1, workers=1)
    try:
        await asyncio.sleep(7)  # time itself: the worker idles past redis-py's 5 s read timeout
        async with httpx.AsyncClient(base_url=cluster.url(0)) as http:
            job_id = (await http.post("/v1/download/album/100001")).json()["job_id"]
        frames = await follow(f"{cluster.ws(0)}/ws/jobs/{job_id}", timeout=30)
    finally:
        cluster.stop()
    assert frames[-1]["event"] == "download_ready"


def test_second_api_process_without_redis_is_refused(tmp_path: Path, jm_double: JmDouble) -> None:
    env = cluster_env(tmp_path, jm_double, "")
    first = Cluster(tmp_path, env, apis=1, workers=0)
    try:
        second = subprocess.run(
            [sys.executable, "-m", "uvicorn", "app.main:app", "--port", str(free_port())],
            env={**first.env}, cwd=first_root(), capture_output=True, text=True, timeout=60,
        )
    finally:
        first.stop()
    assert second.returncode != 0
    assert "without Redis" in second.stderr and "JMBOORU_REDIS_URL" in second.stderr


def test_serve_with_several_workers_needs_redis(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "app.cli", "serve", "--workers", "2"],
        env={**os.environ, "JMBOORU_REDIS_URL": "", "JMBOORU_DATA_DIR": str(tmp_path)},
        cwd=first_root(), capture_output=True, text=True, timeout=60,
    )
    assert result.returncode == 2
    assert "JMBOORU_REDIS_URL" in result.stderr


def first_root() -> Path:
    return Path(__file__).resolve().parent.parent


@pytest.mark.parametrize("server", ["uvicorn", "gunicorn"])
async def test_multi_process_servers_deliver_every_job(
    server: str, tmp_path: Path, jm_double: JmDouble, redis_server: RedisServer
) -> None:
    """``uvicorn --workers 2`` and gunicorn with uvicorn workers: one port, two processes, Redis between them."""
    cluster = Cluster(tmp_path, cluster_env(tmp_path, jm_double, redis_server.url), apis=0, workers=1)
    port = free_port()
    command = {
        "uvicorn": ["-m", "uvicorn", "app.main:app", "--port", str(port), "--workers", "2"],
        "gunicorn": ["-m", "gunicorn", "app.main:app", "-k", "uvicorn.workers.UvicornWorker", "-w", "2",
                     "-b", f"127.0.0.1:{port}"],
    }[server]
    proc = cluster._spawn(server, command)
    base = f"http://127.0.0.1:{port}"
    try:
        pids: set[int] = set()

        async def both_answer() -> bool:
            try:
                async with httpx.AsyncClient(base_url=base) as http:  # a new connection each time
                    pids.add((await http.get("/v1/health")).json()["pid"])
            except httpx.HTTPError:
                assert proc.poll() is None, cluster.logs()
            return len(pids) == 2

        await wait_for(both_answer, timeout=30, message=lambda: f"not two processes: {pids}\n{cluster.logs()}")

        async def one(i: int) -> dict:
            listener = await listen(f"ws://127.0.0.1:{port}/ws/notifications/m{i}", timeout=60)
            async with httpx.AsyncClient(base_url=base) as http:
                resp = await http.post(f"/v1/download/album/{['100001', '200001', '100003'][i % 3]}",
                                       json={"client_id": f"m{i}"})
                assert resp.status_code == 202
            return (await listener)[-1]

        finals = await asyncio.gather(*(one(i) for i in range(10)))
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=20)
        cluster.stop()
    assert [f["event"] for f in finals] == ["download_ready"] * 10
