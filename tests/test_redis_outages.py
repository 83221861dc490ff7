"""Scale-out mode while Redis misbehaves: restarted under a running API and worker, killed
without persistence mid-job, and a poisoned events channel. Real redis-server, real processes."""

from __future__ import annotations

import asyncio
from pathlib import Path

import httpx
import redis

from tests.cluster import Cluster, RedisServer
from tests.conftest import wait_for
from tests.fakes.jm import FakeAlbum, JmDouble
from tests.test_scaleout import cluster_env
from tests.wsclient import follow


async def test_api_and_worker_ride_out_a_redis_restart(
    tmp_path: Path, jm_double: JmDouble, persistent_redis: RedisServer
) -> None:
    jm_double.add_album(FakeAlbum.single("190800", "Before The Restart", 3))
    jm_double.add_album(FakeAlbum.single("190801", "After The Restart", 3))
    with Cluster(tmp_path, cluster_env(tmp_path, jm_double, persistent_redis.url), apis=1, workers=1) as cluster:
        async with httpx.AsyncClient(base_url=cluster.url(0), timeout=30) as http:
            before = (await http.post("/v1/download/album/190800")).json()
            frames = await follow(f"{cluster.ws(0)}/ws/jobs/{before['job_id']}", timeout=30)
            assert frames[-1]["event"] == "download_ready"

            persistent_redis.stop()
            down = await http.post("/v1/download/album/190801")
            assert down.status_code == 503 and "Redis" in down.json()["detail"]
            polled = await http.get(f"/v1/jobs/{before['job_id']}")
            assert polled.status_code == 503 and polled.json()["detail"]
            assert (await http.get("/v1/health")).status_code == 200  # the process itself is fine

            persistent_redis.start()
            # The first request after Redis is back succeeds (stale connections are replaced).
            after = await http.post("/v1/download/album/190801")
            assert after.status_code == 202, after.text
            frames = await follow(f"{cluster.ws(0)}/ws/jobs/{after.json()['job_id']}", timeout=60)
            assert frames[-1]["event"] == "download_ready"
            # Jobs kept by the append-only file are still there.
            assert (await http.get(f"/v1/jobs/{before['job_id']}")).json()["state"] == "ready"
        assert all(proc.poll() is None for proc in cluster.worker_procs), cluster.logs()


async def test_worker_started_before_redis_waits_for_it(
    tmp_path: Path, jm_double: JmDouble, volatile_redis: RedisServer
) -> None:
    jm_double.add_album(FakeAlbum.single("190802", "Patient Worker", 2))
    volatile_redis.stop()
    with Cluster(tmp_path, cluster_env(tmp_path, jm_double, volatile_redis.url), apis=0, workers=1) as cluster:
        await asyncio.sleep(1.5)  # the worker meets no Redis for a while (nothing to wait for but time)
        assert cluster.worker_procs[0].poll() is None, cluster.logs()
        volatile_redis.start()
        cluster.add_api()
        cluster.wait_ready()
        async with httpx.AsyncClient(base_url=cluster.url(0), timeout=30) as http:
            job = (await http.post("/v1/download/album/190802")).json()
        frames = await follow(f"{cluster.ws(0)}/ws/jobs/{job['job_id']}", timeout=60)
        assert frames[-1]["event"] == "download_ready"


async def test_redis_losing_its_data_fails_the_running_job_with_a_final_frame(
    tmp_path: Path, jm_double: JmDouble, volatile_redis: RedisServer
) -> None:
    jm_double.add_album(FakeAlbum.single("190803", "Lost With Redis", 40))
    jm_double.set_latency(0.25, "/media/photos/190803/")
    with Cluster(tmp_path, cluster_env(tmp_path, jm_double, volatile_redis.url), apis=1, workers=1) as cluster:
        async with httpx.AsyncClient(base_url=cluster.url(0), timeout=30) as http:
            job = (await http.post("/v1/download/album/190803", json={"client_id": "phone"})).json()
            job_id = job["job_id"]
            follower = asyncio.create_task(follow(f"{cluster.ws(0)}/ws/jobs/{job_id}", timeout=60))

            async def running() -> bool:
                return (await http.get(f"/v1/jobs/{job_id}")).json()["done"] >= 2

            await wait_for(running, timeout=20)
            volatile_redis.kill()  # SIGKILL, nothing on disk
            volatile_redis.start()  # back, empty
            frames = await follower
            final = frames[-1]
            assert final["event"] == "failed" and final["status"] == "error", frames[-3:]
            assert "start the download again" in final["message"]

            async def recorded() -> bool:
                resp = await http.get(f"/v1/jobs/{job_id}")
                return resp.status_code == 200 and resp.json()["state"] == "failed"

            await wait_for(recorded, timeout=20)


async def test_a_poisoned_events_channel_does_not_stop_delivery(
    tmp_path: Path, jm_double: JmDouble, volatile_redis: RedisServer
) -> None:
    jm_double.add_album(FakeAlbum.single("190804", "After The Poison", 12))
    jm_double.set_latency(0.1, "/media/photos/190804/")
    with Cluster(tmp_path, cluster_env(tmp_path, jm_double, volatile_redis.url), apis=2, workers=1) as cluster:
        poison = redis.Redis(port=volatile_redis.port)
        for message in (b"not json", b"[]", b'{"topics": 5, "frame": {}}', b'{"frame": 1}', b"\xff\xfe"):
            poison.publish("jmbooru:events", message)
            poison.publish("jmbooru:control", message)
        poison.close()
        async with httpx.AsyncClient(base_url=cluster.url(0), timeout=30) as http:
            job = (await http.post("/v1/download/album/190804")).json()
        frames = await follow(f"{cluster.ws(1)}/ws/jobs/{job['job_id']}", timeout=60)
        assert frames[-1]["event"] == "download_ready"
        # Live frames, not only the snapshot and a final found by re-reading the store.
        assert sum(f["event"] == "progress" for f in frames) >= 2
        assert "malformed message skipped" in cluster.logs()
