"""Album download jobs end to end: a real uvicorn server, real WebSocket clients, the JM double."""

from __future__ import annotations

import asyncio
import io
import json
import zipfile
from pathlib import Path

import httpx
import pytest
from PIL import Image, ImageChops, ImageStat
from websockets.asyncio.client import connect

from tests.conftest import LiveServer, make_settings, wait_for
from tests.fakes.jm import SAME_TITLE, FakeAlbum, JmDouble
from tests.wsclient import follow, raw_get


async def start_album(http: httpx.AsyncClient, aid: str, client_id: str | None = None, **body: str) -> dict:
    if client_id:
        body["client_id"] = client_id
    resp = await http.post(f"/v1/download/album/{aid}", json=body or None)
    assert resp.status_code == 202, resp.text
    return resp.json()


def page_names(archive: zipfile.ZipFile) -> list[str]:
    return sorted(n for n in archive.namelist() if n != "cover.jpg")


async def run_to_end(live: LiveServer, aid: str, client_id: str | None = None, **body: str) -> tuple[dict, list[dict]]:
    async with httpx.AsyncClient(base_url=live.url) as http:
        started = await start_album(http, aid, client_id, **body)
        frames = await follow(f"{live.ws_url}/ws/jobs/{started['job_id']}")
    return started, frames


async def fetch_zip(live: LiveServer, frame: dict) -> zipfile.ZipFile:
    async with httpx.AsyncClient(base_url=live.url) as http:
        resp = await http.get(f"/v1/download/{frame['file_name']}")
        assert resp.status_code == 200
        assert resp.headers["content-type"] == "application/zip"
        assert ".zip" in resp.headers["content-disposition"]
        via_job = await http.get(frame["download_url"])
        assert via_job.content == resp.content
    return zipfile.ZipFile(io.BytesIO(resp.content))


async def test_album_job_streams_progress_and_zip_matches_served_pages(live: LiveServer, jm_double: JmDouble) -> None:
    started, frames = await run_to_end(live, "100001", "phone-1")
    assert started["status"] == "processing" and started["status_url"] == f"/v1/jobs/{started['job_id']}"
    assert frames[0]["event"] == "snapshot"
    seqs = [f["seq"] for f in frames[1:]]
    assert seqs == sorted(seqs) and len(set(seqs)) == len(seqs)
    assert any(f["event"] == "progress" for f in frames)
    final = frames[-1]
    assert final["event"] == "download_ready" and final["status"] == "download_ready"
    assert final["state"] == "ready" and final["done"] == final["total"] == 5
    assert final["download_url"] == f"/v1/jobs/{started['job_id']}/file"
    archive = await fetch_zip(live, final)
    names = page_names(archive)
    assert names == [f"{i:05d}.webp" for i in range(1, 6)]
    for index, name in enumerate(names, start=1):
        assert archive.getinfo(name).compress_type == zipfile.ZIP_STORED
        assert archive.read(name) == jm_double.served_bytes("100001", index)
    assert archive.read("cover.jpg") == jm_double.cover_bytes("100001", "_3x4")


async def test_the_album_the_post_looked_up_is_not_asked_for_again(live: LiveServer, jm_double: JmDouble) -> None:
    """The POST checks the album (the look-up /v1/info caches); the job downloads from that detail
    instead of asking JM for it a second time (issue 26: one JM round trip less per album)."""
    jm_double.reset_hits()
    _, frames = await run_to_end(live, "600001")
    assert frames[-1]["event"] == "download_ready" and frames[-1]["done"] == 7
    assert jm_double.hits("/album") == 1
    archive = await fetch_zip(live, frames[-1])
    assert len(page_names(archive)) == 7


async def test_scrambled_album_is_descrambled(live: LiveServer, jm_double: JmDouble) -> None:
    def scrambled(index: int) -> Image.Image:
        return Image.open(io.BytesIO(jm_double.served_bytes("500001", index))).convert("RGB")

    _, frames = await run_to_end(live, "500001")
    archive = await fetch_zip(live, frames[-1])
    names = page_names(archive)
    assert len(names) == 4
    for index, name in enumerate(names, start=1):
        got = Image.open(io.BytesIO(archive.read(name))).convert("RGB")
        expected = jm_double.expected_image("500001", index)
        assert got.size == expected.size
        # jmcomic re-encodes descrambled pages (lossy WebP, as jmcomic itself does): compare pixels
        # with a tolerance far below what strips in the wrong order would give.
        diff = ImageStat.Stat(ImageChops.difference(got, expected)).mean
        assert max(diff) < 10, f"page {index} differs: {diff}"
        assert max(ImageStat.Stat(ImageChops.difference(got, scrambled(index))).mean) > 20
        assert archive.read(name) != jm_double.served_bytes("500001", index)


async def test_two_chapters_are_flat_pages_in_reading_order_by_default(live: LiveServer, jm_double: JmDouble) -> None:
    _, frames = await run_to_end(live, "200001")
    archive = await fetch_zip(live, frames[-1])
    assert page_names(archive) == [f"{i:05d}.webp" for i in range(1, 6)]
    assert all("/" not in name for name in archive.namelist())
    expected = [("200001", 1), ("200001", 2), ("200001", 3), ("200002", 1), ("200002", 2)]
    for name, (photo_id, index) in zip(page_names(archive), expected, strict=True):
        assert archive.read(name) == jm_double.served_bytes(photo_id, index)


async def test_chapters_layout_puts_chapters_in_folders_as_a_separate_job(
    live: LiveServer, jm_double: JmDouble
) -> None:
    flat, _ = await run_to_end(live, "200001")
    started, frames = await run_to_end(live, "200001", layout="chapters")
    assert started["job_id"] != flat["job_id"]
    assert frames[-1]["total"] == 5
    archive = await fetch_zip(live, frames[-1])
    names = archive.namelist()
    folders = sorted({n.split("/")[0] for n in names if n != "cover.jpg"})
    assert folders == ["001 第1話", "002 第2話"]
    assert [n for n in names if n.startswith("002")] == ["002 第2話/00001.webp", "002 第2話/00002.webp"]
    assert archive.read("002 第2話/00002.webp") == jm_double.served_bytes("200002", 2)


async def test_illegal_title_gives_safe_names(live: LiveServer) -> None:
    _, frames = await run_to_end(live, "100002")
    final = frames[-1]
    assert all(c.isalnum() or c in "-_." for c in final["file_name"])
    async with httpx.AsyncClient(base_url=live.url) as http:
        resp = await http.get(final["download_url"])
    disposition = resp.headers["content-disposition"]
    assert resp.status_code == 200 and "JM100002" in disposition
    assert "/" not in disposition.split("filename", 1)[1].replace("%2F", "/").split("''")[-1].rsplit(".zip")[0]


async def test_albums_with_the_same_title_do_not_collide(live: LiveServer, jm_double: JmDouble) -> None:
    (_, a), (_, b) = await asyncio.gather(run_to_end(live, "100003"), run_to_end(live, "100004"))
    assert a[-1]["file_name"] != b[-1]["file_name"]
    assert a[-1]["title"] == b[-1]["title"] == SAME_TITLE
    za, zb = await fetch_zip(live, a[-1]), await fetch_zip(live, b[-1])
    assert za.read(sorted(za.namelist())[0]) == jm_double.served_bytes("100003", 1)
    assert zb.read(sorted(zb.namelist())[0]) == jm_double.served_bytes("100004", 1)


async def test_late_subscriber_gets_snapshot_and_final_frame(live: LiveServer) -> None:
    started, frames = await run_to_end(live, "100001", "late-client")
    late = await follow(f"{live.ws_url}/ws/jobs/{started['job_id']}")
    assert [f["event"] for f in late] == ["snapshot", "download_ready"]
    assert late[1] == frames[-1]


async def test_offline_client_learns_about_its_finished_job_on_reconnect(live: LiveServer) -> None:
    started, frames = await run_to_end(live, "100001", "offline-app")
    missed = await follow(f"{live.ws_url}/ws/notifications/offline-app", timeout=5)
    assert missed[0]["event"] == "download_ready" and missed[0]["job_id"] == started["job_id"]
    assert missed[0]["file_name"] == frames[-1]["file_name"]
    # Delivered once: a second reconnect does not repeat it.
    with pytest.raises(TimeoutError):
        await follow(f"{live.ws_url}/ws/notifications/offline-app", timeout=1)


async def test_notification_socket_carries_several_jobs(live: LiveServer) -> None:
    async def listen() -> list[dict]:
        frames: list[dict] = []
        async with connect(f"{live.ws_url}/ws/notifications/multi", compression=None) as ws:
            ready.set()
            async for message in ws:
                frames.append(json.loads(message))
                if sum(f["event"] == "download_ready" for f in frames) == 2:
                    return frames
        return frames

    ready = asyncio.Event()
    listener = asyncio.create_task(asyncio.wait_for(listen(), 30))
    await ready.wait()
    async with httpx.AsyncClient(base_url=live.url) as http:
        a = await start_album(http, "100003", "multi")
        b = await start_album(http, "100004", "multi")
    frames = await listener
    finals = [f for f in frames if f["event"] == "download_ready"]
    assert {f["job_id"] for f in finals} == {a["job_id"], b["job_id"]}
    assert {f["album_id"] for f in finals} == {"100003", "100004"}


async def test_same_album_requested_twice_is_one_job_and_both_clients_are_told(
    live: LiveServer, jm_double: JmDouble
) -> None:
    jm_double.set_latency(0.05, "/media/photos")
    async with httpx.AsyncClient(base_url=live.url) as http:
        a, b = await asyncio.gather(start_album(http, "200001", "alice"), start_album(http, "200001", "bob"))
    assert a["job_id"] == b["job_id"]
    assert sorted([a["joined"], b["joined"]]) == [False, True]
    fa, fb = await asyncio.gather(
        follow(f"{live.ws_url}/ws/notifications/alice", timeout=30),
        follow(f"{live.ws_url}/ws/notifications/bob", timeout=30),
    )
    assert fa[-1]["event"] == fb[-1]["event"] == "download_ready"
    assert jm_double.hits("/media/photos") == 5
    # A fresh archive is reused: a third request gets the ready job at once.
    async with httpx.AsyncClient(base_url=live.url) as http:
        c = await start_album(http, "200001", "carol")
    assert c["job_id"] == a["job_id"] and c["state"] == "ready" and c["file_name"] == fa[-1]["file_name"]
    fc = await follow(f"{live.ws_url}/ws/notifications/carol", timeout=5)
    assert fc[0]["event"] == "download_ready"


async def test_cancel_stops_the_download_and_removes_partial_files(
    live: LiveServer, jm_double: JmDouble, settings
) -> None:
    jm_double.add_album(FakeAlbum.single("190001", "Slow Album", 40))
    jm_double.set_latency(0.2, "/media/photos")
    async with httpx.AsyncClient(base_url=live.url) as http:
        started = await start_album(http, "190001")
        job_id = started["job_id"]
        follower = asyncio.create_task(follow(f"{live.ws_url}/ws/jobs/{job_id}"))
        async def under_way() -> dict | None:
            job = (await http.get(f"/v1/jobs/{job_id}")).json()
            return job if job["done"] >= 2 else None

        job = await wait_for(under_way, timeout=15)
        assert job["state"] == "running"
        resp = await http.delete(f"/v1/jobs/{job_id}")
        assert resp.status_code == 200 and resp.json()["state"] == "cancelled"
        frames = await follower
        assert frames[-1]["event"] == "cancelled" and frames[-1]["status"] == "error"
        assert frames[-1]["done"] < 40
        assert not (settings.data_path / "work" / job_id).exists()
        assert not any((settings.data_path / "archives").iterdir())
        assert (await http.get(f"/v1/jobs/{job_id}/file")).status_code == 404


@pytest.mark.parametrize("aid", ["999999", "300001"])  # unknown; login-only (JM says "no such album")
async def test_unknown_album_is_404_at_post_and_makes_no_job(live: LiveServer, aid: str) -> None:
    async with httpx.AsyncClient(base_url=live.url) as http:
        info = await http.get(f"/v1/info/{aid}")
        resp = await http.post(f"/v1/download/album/{aid}", json={"client_id": "phone"})
        assert resp.status_code == 404 and info.status_code == 404
        assert resp.json()["detail"] == info.json()["detail"]
        assert (await http.get("/v1/jobs")).json() == {"jobs": [], "next": None}
    assert not (live.settings.data_path / "work").exists() or not any((live.settings.data_path / "work").iterdir())


async def test_upstream_failure_during_the_album_lookup_is_502_and_makes_no_job(
        live: LiveServer, jm_double: JmDouble) -> None:
    jm_double.add_album(FakeAlbum.single("190003", "Looked Up While JM Fails", 2))
    jm_double.fail("/album", status=500)
    async with httpx.AsyncClient(base_url=live.url) as http:
        resp = await http.post("/v1/download/album/190003")
        assert resp.status_code in (502, 503, 504) and resp.json()["detail"]
        assert (await http.get("/v1/jobs")).json()["jobs"] == []


async def test_upstream_failing_mid_download_fails_the_job(live: LiveServer, jm_double: JmDouble, settings) -> None:
    jm_double.add_album(FakeAlbum.single("190002", "Breaks Halfway", 10))
    jm_double.fail_images_after(4)
    started, frames = await run_to_end(live, "190002")
    final = frames[-1]
    assert final["event"] == "failed"
    assert "could not be downloaded" in final["message"]
    assert "http" not in final["message"]
    assert not (settings.data_path / "work" / started["job_id"]).exists()


async def test_invalid_album_ids_are_refused(live: LiveServer) -> None:
    async with httpx.AsyncClient(base_url=live.url) as http:
        for aid in ("abc", "0", "-1"):
            assert (await http.post(f"/v1/download/album/{aid}")).status_code == 400
        resp = await http.post("/v1/download/album/1", json={"client_id": "bad id with spaces"})
        assert resp.status_code == 422
        assert (await http.get("/v1/jobs/doesnotexist")).status_code == 404


async def test_byte_ranges_are_honoured(live: LiveServer) -> None:
    _, frames = await run_to_end(live, "100001")
    async with httpx.AsyncClient(base_url=live.url) as http:
        full = (await http.get(frames[-1]["download_url"])).content
        part = await http.get(frames[-1]["download_url"], headers={"Range": "bytes=100-199"})
        assert part.status_code == 206 and part.content == full[100:200]
        tail = await http.get(f"/v1/download/{frames[-1]['file_name']}", headers={"Range": "bytes=-50"})
        assert tail.status_code == 206 and tail.content == full[-50:]


async def test_path_traversal_never_leaves_the_archive_folder(live: LiveServer, settings) -> None:
    (settings.data_path / "secret.txt").write_text("top secret")
    await run_to_end(live, "100001")
    targets = [
        "/v1/download/../jobs.sqlite3",
        "/v1/download/..%2Fjobs.sqlite3",
        "/v1/download/..%2F..%2Fsecret.txt",
        "/v1/download/%2e%2e%2fsecret.txt",
        "/v1/download/%2e%2e/secret.txt",
        "/v1/download/..%5Csecret.txt",
        "/v1/download/....%2F%2Fsecret.txt",
        "/v1/download/%252e%252e%252fsecret.txt",
        "/v1/download/jobs.sqlite3",
        "/v1/download/.%2Fsecret.txt",
        "/v1/download/%00secret.txt",
    ]
    for target in targets:
        status, body = raw_get(live.port, target)
        assert status in (400, 404), (target, status)
        assert b"top secret" not in body and b"SQLite" not in body


async def test_short_ttl_expires_the_archive(tmp_path: Path, jm_double: JmDouble) -> None:
    settings = make_settings(tmp_path, jm_double, file_ttl_seconds=1, cleanup_interval_seconds=0.3)
    with LiveServer(settings) as live:
        started, frames = await run_to_end(live, "100001")
        archive = settings.data_path / "archives" / frames[-1]["file_name"]
        assert archive.exists()
        async with httpx.AsyncClient(base_url=live.url) as http:
            async def expired() -> dict | None:
                job = (await http.get(f"/v1/jobs/{started['job_id']}")).json()
                return job if job["state"] == "expired" else None

            await wait_for(expired, timeout=10)
            assert not archive.exists()
            resp = await http.get(f"/v1/download/{frames[-1]['file_name']}")
            assert resp.status_code == 404
            assert resp.json()["status"] == "error" and resp.json()["msg"]


async def test_jobs_beyond_the_concurrency_cap_wait_in_the_queue(tmp_path: Path, jm_double: JmDouble) -> None:
    settings = make_settings(tmp_path, jm_double, max_concurrent_jobs=1)
    jm_double.set_latency(0.6, "/media/photos")
    with LiveServer(settings) as live:
        async with httpx.AsyncClient(base_url=live.url) as http:
            first = await start_album(http, "100001")
            second = await start_album(http, "200001")
            async def first_running() -> list[str] | None:
                states = [(await http.get(f"/v1/jobs/{j['job_id']}")).json()["state"] for j in (first, second)]
                return states if states[0] == "running" else None

            assert await wait_for(first_running, timeout=10) == ["running", "queued"]
            frames = await follow(f"{live.ws_url}/ws/jobs/{second['job_id']}")
            assert frames[-1]["event"] == "download_ready"
