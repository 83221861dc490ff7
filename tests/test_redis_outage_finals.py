"""WebSockets through a Redis outage (issue 19, item 3): sockets outlive an outage longer than the
followers' re-read and get the final once Redis is back; a job whose record Redis lost ends with a
``failed`` final even when it finished before its heartbeat noticed; a lease broken by the outage
does not make a finished job download again. Real redis-server, real API and worker processes."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import httpx

from app.jobs.follow import RECHECK_SECONDS
from tests.cluster import Cluster, RedisServer
from tests.conftest import wait_for
from tests.fakes.jm import FakeAlbum, JmDouble
from tests.test_scaleout import cluster_env
from tests.wsclient import follow, listen, sockets_open

LEASE_SECONDS = 3.0  # cluster_env's JMBOORU_JOB_LEASE_SECONDS
# Longer than the followers' re-read (the read that used to kill the socket) and than a lease.
OUTAGE_SECONDS = max(RECHECK_SECONDS, LEASE_SECONDS) + 1.5
LOG_FAULTS = ("Traceback", "Exception in ASGI application", "never retrieved", "cleanup failed")


async def test_sockets_outlive_a_redis_outage_and_the_job_is_downloaded_once(
    tmp_path: Path, jm_double: JmDouble, persistent_redis: RedisServer
) -> None:
    album = FakeAlbum.single("191910", "Through The Outage", 12)
    jm_double.add_album(album)
    jm_double.set_latency(0.4, "/media/photos/191910/")
    with Cluster(tmp_path, cluster_env(tmp_path, jm_double, persistent_redis.url), apis=1, workers=1) as cluster:
        # The notifications socket is open, and taken up by the server, before the POST (as the apps do).
        notes = await listen(f"{cluster.ws(0)}/ws/notifications/outage-phone", timeout=90)
        await wait_for(lambda: sockets_open(cluster.url(0)), message="the server never took up the socket")
        async with httpx.AsyncClient(base_url=cluster.url(0), timeout=30) as http:
            job = (await http.post("/v1/download/album/191910", json={"client_id": "outage-phone"})).json()
            job_id = job["job_id"]
            watcher = asyncio.create_task(follow(f"{cluster.ws(0)}/ws/jobs/{job_id}", timeout=90))

            async def downloading() -> bool:
                return (await http.get(f"/v1/jobs/{job_id}")).json()["done"] >= 2

            await wait_for(downloading, timeout=30)
            persistent_redis.stop()  # the download finishes while Redis is away
            down_since = time.monotonic()
            await asyncio.sleep(OUTAGE_SECONDS)  # the outage itself: no condition to wait for
            assert not notes.done() and not watcher.done(), "a socket ended during the outage"
            persistent_redis.start()
            assert time.monotonic() - down_since >= OUTAGE_SECONDS

            frames, finals = await watcher, await notes
            assert frames[-1]["event"] == "download_ready", frames[-3:]
            assert finals[-1]["event"] == "download_ready" and finals[-1]["job_id"] == job_id, finals
            archive = await http.get(frames[-1]["download_url"])
            assert archive.status_code == 200

            # The lease ran out while Redis was away; the worker that finished wins and nobody
            # downloads the album again (wait out a few sweeps and leases to be sure).
            await asyncio.sleep(2 * LEASE_SECONDS)  # a negative check: time itself (leases and sweeps)
            assert (await http.get(f"/v1/jobs/{job_id}")).json()["state"] == "ready"
        assert jm_double.hits("/media/photos/191910/") == album.total_pages
        logs = cluster.logs()
        assert not [fault for fault in LOG_FAULTS if fault in logs], logs


async def test_a_job_redis_forgot_ends_failed_on_its_clients_socket_even_before_a_heartbeat(
    tmp_path: Path, jm_double: JmDouble, volatile_redis: RedisServer
) -> None:
    jm_double.add_album(FakeAlbum.single("191911", "Forgotten Quickly", 4))
    jm_double.set_latency(0.6, "/media/photos/191911/")
    # A long lease: the first renewal (lease / 3) would come long after this job ends.
    env = cluster_env(tmp_path, jm_double, volatile_redis.url, JMBOORU_JOB_LEASE_SECONDS="60")
    with Cluster(tmp_path, env, apis=1, workers=1) as cluster:
        notes = await listen(f"{cluster.ws(0)}/ws/notifications/forgetful-phone", timeout=60)
        await wait_for(lambda: sockets_open(cluster.url(0)), message="the server never took up the socket")
        async with httpx.AsyncClient(base_url=cluster.url(0), timeout=30) as http:
            job = (await http.post("/v1/download/album/191911", json={"client_id": "forgetful-phone"})).json()
            job_id = job["job_id"]

            async def running() -> bool:
                return (await http.get(f"/v1/jobs/{job_id}")).json()["state"] == "running"

            await wait_for(running, timeout=30)
            volatile_redis.kill()  # SIGKILL, nothing on disk
            volatile_redis.start()  # back, empty, while the download goes on
            finals = await notes
            final = finals[-1]
            assert final["job_id"] == job_id and final["event"] == "failed", finals
            assert "start the download again" in final["message"]

            async def recorded() -> bool:
                resp = await http.get(f"/v1/jobs/{job_id}")
                return resp.status_code == 200 and resp.json()["state"] == "failed"

            await wait_for(recorded, timeout=20)
        logs = cluster.logs()
        assert not [fault for fault in LOG_FAULTS if fault in logs], logs
