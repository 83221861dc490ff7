"""Jobs under faults, in the embedded mode: a hand-off that fails, a full disk, a cancel that lands
before the runner starts, a queued job no queue holds. Nothing may be left stuck or half-written."""

from __future__ import annotations

import asyncio
import contextlib
import errno
import os
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from app.jobs.models import Job, new_job_id
from app.jobs.store import SqliteJobStore
from tests.conftest import LiveServer, app_client, make_settings, wait_for
from tests.fakes.jm import FakeAlbum, JmDouble
from tests.wsclient import follow


@contextlib.contextmanager
def small_disk(path: Path, size_kb: int) -> Iterator[bool]:
    """A tmpfs of ``size_kb`` at ``path`` when running as root (yields True); otherwise yields
    False and the caller injects the write failure instead."""
    path.mkdir(parents=True, exist_ok=True)
    mounted = os.geteuid() == 0 and subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size_kb}k", "tmpfs", str(path)], capture_output=True
    ).returncode == 0
    try:
        yield mounted
    finally:
        if mounted:
            subprocess.run(["umount", "-l", str(path)], capture_output=True)


def fill(path: Path, leave_bytes: int = 0) -> Path:
    """Fill the file system of ``path`` until at most ``leave_bytes`` are free."""
    filler = path / "filler.bin"
    with open(filler, "wb") as fh:
        try:
            while True:
                free = os.statvfs(path).f_bavail * os.statvfs(path).f_frsize
                if free <= leave_bytes:
                    break
                fh.write(b"\0" * min(65536, max(4096, free - leave_bytes)))
                fh.flush()
        except OSError as exc:
            assert exc.errno == errno.ENOSPC
    return filler


async def test_delete_straight_after_post_is_answered_at_once(live: LiveServer, jm_double: JmDouble) -> None:
    jm_double.add_album(FakeAlbum.single("190700", "Cancelled At Once", 30))
    jm_double.set_latency(0.2, "/media/photos/190700/")
    async with httpx.AsyncClient(base_url=live.url) as http:
        for _ in range(16):
            job = (await http.post("/v1/download/album/190700")).json()
            started = time.monotonic()
            resp = await http.delete(f"/v1/jobs/{job['job_id']}")
            assert time.monotonic() - started < 2.0
            assert resp.status_code == 200 and resp.json()["state"] == "cancelled"
            frames = await follow(f"{live.ws_url}/ws/jobs/{job['job_id']}", timeout=5)
            assert frames[-1]["event"] == "cancelled"
            work = live.settings.data_path / "work" / job["job_id"]
            assert not work.exists(), f"left in the work folder: {sorted(p.name for p in work.rglob('*'))}"


async def test_failed_queue_handoff_is_503_and_leaves_nothing_to_join(settings) -> None:
    async with app_client(settings) as client:
        queue = client.app.state.jobs._queue  # type: ignore[attr-defined]
        real_submit = queue.submit

        async def broken(job_id: str) -> None:  # the queue's connection is gone
            raise ConnectionError("queue unreachable")

        queue.submit = broken
        resp = await client.post("/v1/download/album/100001", json={"client_id": "unlucky"})
        assert resp.status_code == 503
        assert "nothing was started" in resp.json()["detail"]
        queue.submit = real_submit
        again = await client.post("/v1/download/album/100001", json={"client_id": "unlucky"})
        assert again.status_code == 202 and again.json()["joined"] is False
        job_id = again.json()["job_id"]

        async def ready() -> bool:
            return (await client.get(f"/v1/jobs/{job_id}")).json()["state"] == "ready"

        await wait_for(ready, timeout=20)


async def test_full_disk_when_saving_a_job_is_503_and_nothing_is_stored(
    tmp_path: Path, jm_double: JmDouble, monkeypatch: pytest.MonkeyPatch
) -> None:
    data = tmp_path / "small"
    with small_disk(data, 1024) as mounted:
        settings = make_settings(data, jm_double)
        async with app_client(settings) as client:
            if mounted:
                filler = fill(data)
            else:
                def no_space(self: SqliteJobStore, record: dict) -> None:
                    raise OSError(errno.ENOSPC, "No space left on device")

                monkeypatch.setattr(SqliteJobStore, "_write_sync", no_space)
            resp = await client.post("/v1/download/album/100001", json={"client_id": "phone"})
            assert resp.status_code == 503
            assert "disk is full" in resp.json()["detail"]
            if mounted:
                filler.unlink()
            else:
                monkeypatch.undo()
            again = await client.post("/v1/download/album/100001", json={"client_id": "phone"})
            assert again.status_code == 202 and again.json()["joined"] is False


async def test_full_disk_during_a_download_fails_the_job_saying_so(tmp_path: Path, jm_double: JmDouble) -> None:
    data = tmp_path / "small"
    with small_disk(data, 2048) as mounted:
        if not mounted:
            pytest.fail("this test needs root to mount a small tmpfs (CI runs as root)")
        jm_double.add_album(FakeAlbum.single("190701", "Too Big For The Disk", 60))
        settings = make_settings(data, jm_double)
        with LiveServer(settings) as live:
            async with httpx.AsyncClient(base_url=live.url) as http:
                assert (await http.get("/v1/health")).status_code == 200
                filler = fill(data, leave_bytes=300_000)
                job = (await http.post("/v1/download/album/190701")).json()
                frames = await follow(f"{live.ws_url}/ws/jobs/{job['job_id']}", timeout=60)
                filler.unlink()
        final = frames[-1]
        assert final["event"] == "failed"
        assert "disk is full" in final["message"] and "from JM" not in final["message"]
        assert not (data / "work" / job["job_id"]).exists()


async def test_sweep_queues_again_a_job_no_queue_holds(settings) -> None:
    async with app_client(settings) as client:
        service = client.app.state.jobs  # type: ignore[attr-defined]
        # A job saved as queued whose hand-off never happened (the process died in between).
        orphan = Job(job_id=new_job_id(), kind="album", key="album:100001", params={"album_id": "100001"},
                     title="JM100001", updated_at=time.time() - 120)
        await service._store.create_or_join(orphan, None)
        orphan_id = orphan.job_id
        assert (await client.get(f"/v1/jobs/{orphan_id}")).json()["state"] == "queued"
        await service.sweep()

        async def ready() -> bool:
            return (await client.get(f"/v1/jobs/{orphan_id}")).json()["state"] == "ready"

        await wait_for(ready, timeout=20)


async def test_a_job_queued_a_moment_ago_is_left_alone(settings) -> None:
    async with app_client(settings) as client:
        service = client.app.state.jobs  # type: ignore[attr-defined]
        fresh = Job(job_id=new_job_id(), kind="album", key="album:100001", params={"album_id": "100001"})
        await service._store.create_or_join(fresh, None)
        submitted: list[str] = []
        real_submit = service._queue.submit

        async def spy(job_id: str) -> None:
            submitted.append(job_id)
            await real_submit(job_id)

        service._queue.submit = spy
        await service.sweep()
        await asyncio.sleep(0)
        assert submitted == []


# --- JM says "slow down" or fails: the sentence says which, and a job honours Retry-After ---------


async def test_jm_429_is_503_with_retry_after_and_500_is_named(client: httpx.AsyncClient, jm_double: JmDouble) -> None:
    await client.get("/v1/info/100001")  # the client exists
    jm_double.fail("/search", status=429, body=b"Too Many Requests", headers={"Retry-After": "42"})
    resp = await client.get("/v1/search/limited/1")
    assert resp.status_code == 503 and resp.headers["retry-after"] == "42"
    assert "rate-limiting" in resp.json()["detail"] and "Cloudflare" not in resp.json()["detail"]
    jm_double.fail("/categories", status=500)
    failing = await client.get("/v1/rank/week")
    assert failing.status_code == 502 and "HTTP 500" in failing.json()["detail"]
    assert "Cloudflare" not in failing.json()["detail"]


async def test_album_job_waits_for_retry_after_and_says_so(live: LiveServer, jm_double: JmDouble) -> None:
    jm_double.add_album(FakeAlbum.single("190702", "Rate Limited", 6))
    jm_double.fail("/media/photos/190702/00004", status=429, body=b"slow down", headers={"Retry-After": "1"},
                   times=1)
    async with httpx.AsyncClient(base_url=live.url) as http:
        job = (await http.post("/v1/download/album/190702")).json()
    frames = await follow(f"{live.ws_url}/ws/jobs/{job['job_id']}", timeout=30)
    assert any("rate-limiting" in f["message"] and "retrying at" in f["message"] for f in frames)
    final = frames[-1]
    assert final["event"] == "download_ready" and final["done"] == final["total"] == 6
