"""The real clients of JMComic_Server_API, played against a live jmbooru: the WatchJM watchOS app's
download flow byte for byte, and one-frame notification clients that keep their client id.

The watch app (qwasd7680/WatchJM_watchOS, ``Net.shared``) checks the server with
``GET /v1/<ms as a Double>``, opens ``/ws/notifications/<uuid>``, sends the POST straight away
without waiting for any frame, reads ONE frame and needs ``download_ready`` with a ``file_name``,
downloads ``/v1/download/<file_name>``, unzips it into a folder, lists that folder without
descending into sub-folders, keeps ``.webp``/``.gif``, sorts by name and shows ``00001.webp``.
"""

from __future__ import annotations

import asyncio
import io
import json
import time
import uuid
import zipfile
from pathlib import Path

import httpx
import pytest
from PIL import Image, ImageChops, ImageStat
from websockets.asyncio.client import connect

from tests.conftest import LiveServer, make_settings
from tests.fakes.jm import FakeAlbum, JmDouble
from tests.wsclient import follow


async def watch_health(http: httpx.AsyncClient) -> str:
    """``Net.Check``: the clock as a Swift Double, accepted only with status ok and our app name."""
    now = float(int(time.time() * 1000))  # Swift prints 1764000000000.0
    resp = await http.get(f"/v1/{now}")
    assert resp.status_code == 200
    body = resp.json()
    assert body["status"] == "ok" and body["app"] == "jmcomic_server_api"
    assert isinstance(body["latency"], str)
    assert int(body["latency"]) >= 0  # the app and the seed's tests read it with int()
    return body["latency"]


async def watch_download(live: LiveServer, album_id: str, client_id: str) -> tuple[dict, bytes]:
    """Open the socket, POST without waiting for any frame, read exactly one frame, fetch the file."""
    socket = asyncio.ensure_future(connect(f"{live.ws_url}/ws/notifications/{client_id}", compression=None))
    async with httpx.AsyncClient(base_url=live.url) as http:
        resp = await http.post(f"/v1/download/album/{album_id}", json={"client_id": client_id})
        assert resp.status_code == 202
        assert resp.json()["status"] == "processing" and resp.json()["message"]
        ws = await socket
        try:
            frame = json.loads(await asyncio.wait_for(ws.recv(), 30))
        finally:
            await ws.close()
        assert frame["status"] == "download_ready", frame
        assert frame["file_name"]
        archive = await http.get(f"/v1/download/{frame['file_name']}")
        assert archive.status_code == 200
    return frame, archive.content


def unzip_like_the_watch(data: bytes, folder: Path) -> list[Path]:
    """Unzip, list the folder without descending, keep webp/gif, sort by name."""
    zipfile.ZipFile(io.BytesIO(data)).extractall(folder)
    pages = [p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in (".webp", ".gif")]
    return sorted(pages, key=lambda p: p.name)


def assert_same_picture(path: Path, expected: Image.Image) -> None:
    got = Image.open(path).convert("RGB")
    assert got.size == expected.size
    # Descrambled pages are re-encoded by jmcomic (lossy WebP): compare pixels with a tolerance far
    # below what a page from elsewhere or strips in the wrong order would give.
    assert max(ImageStat.Stat(ImageChops.difference(got, expected)).mean) < 10, path.name


@pytest.mark.parametrize(
    ("album_id", "chapters"),
    [("500001", [("500001", 4)]), ("600001", [("600001", 3), ("600002", 4)])],
    ids=["one-chapter", "two-chapters"],
)
async def test_watch_app_flow_reads_every_page_in_order(
    live: LiveServer, jm_double: JmDouble, tmp_path: Path, album_id: str, chapters: list[tuple[str, int]]
) -> None:
    async with httpx.AsyncClient(base_url=live.url) as http:
        await watch_health(http)
    frame, data = await watch_download(live, album_id, str(uuid.uuid4()).upper())
    pages = unzip_like_the_watch(data, tmp_path / album_id)
    expected = [(photo_id, index) for photo_id, count in chapters for index in range(1, count + 1)]
    assert [p.name for p in pages] == [f"{n:05d}.webp" for n in range(1, len(expected) + 1)]
    assert pages[0].name == "00001.webp"  # the app's cover when cover.jpg is missing
    for page, (photo_id, index) in zip(pages, expected, strict=True):
        assert_same_picture(page, jm_double.expected_image(photo_id, index))
    # The newest app shows cover.jpg from the same folder.
    assert (tmp_path / album_id / "cover.jpg").read_bytes() == jm_double.cover_bytes(album_id, "_3x4")


async def test_one_frame_client_never_takes_an_old_final_for_its_new_job(
    tmp_path: Path, jm_double: JmDouble
) -> None:
    grace = 0.5
    settings = make_settings(tmp_path / "data", jm_double, notify_replay_grace_seconds=grace)
    jm_double.add_album(FakeAlbum.single("190600", "Started Last Time", 12))
    jm_double.set_latency(0.25, "/media/photos/190600/")
    with LiveServer(settings) as live:
        async with httpx.AsyncClient(base_url=live.url) as http:
            # Last time, the app started an album and went away before it was ready.
            old = (await http.post("/v1/download/album/190600", json={"client_id": "keeper"})).json()
            await asyncio.sleep(grace * 1.5)  # time itself: the old request is older than the grace window
            # Now it asks for another album, and reads one frame, while the old job ends meanwhile.
            frame, _ = await watch_download(live, "100001", "keeper")
            assert frame["album_id"] == "100001" and frame["job_id"] != old["job_id"]
            # The old job's final is not lost: the next connection gets it, once.
            missed = await follow(f"{live.ws_url}/ws/notifications/keeper", timeout=15)
            assert [f["job_id"] for f in missed] == [old["job_id"]]
            assert missed[0]["event"] == "download_ready"
            with pytest.raises(TimeoutError):
                await follow(f"{live.ws_url}/ws/notifications/keeper", timeout=grace + 1.5)


async def test_old_final_arriving_during_a_new_job_waits_for_the_new_final(
    tmp_path: Path, jm_double: JmDouble
) -> None:
    grace = 0.3
    settings = make_settings(tmp_path / "data", jm_double, notify_replay_grace_seconds=grace)
    jm_double.add_album(FakeAlbum.single("190601", "Old And Quick", 4))
    jm_double.add_album(FakeAlbum.single("190602", "New And Slow", 4))
    jm_double.set_latency(0.6, "/media/photos/190601/")
    jm_double.set_latency(1.5, "/media/photos/190602/")
    with LiveServer(settings) as live:
        async with httpx.AsyncClient(base_url=live.url) as http:
            old = (await http.post("/v1/download/album/190601", json={"client_id": "watch"})).json()
            await asyncio.sleep(grace * 1.5)  # let the grace window pass (nothing else to wait for)
            assert (await http.get(f"/v1/jobs/{old['job_id']}")).json()["state"] == "running"
            async with connect(f"{live.ws_url}/ws/notifications/watch", compression=None) as ws:
                new = (await http.post("/v1/download/album/190602", json={"client_id": "watch"})).json()
                first = json.loads(await asyncio.wait_for(ws.recv(), 30))
                second = json.loads(await asyncio.wait_for(ws.recv(), 30))
            assert (await http.get(f"/v1/jobs/{old['job_id']}")).json()["finished_at"] is not None
    assert first["job_id"] == new["job_id"] and first["event"] == "download_ready"
    assert second["job_id"] == old["job_id"] and second["event"] == "download_ready"


async def test_notifications_send_only_finals_unless_progress_is_asked_for(live: LiveServer) -> None:
    async def listen(query: str) -> list[dict]:
        frames: list[dict] = []
        async with connect(f"{live.ws_url}/ws/notifications/both{query}", compression=None) as ws:
            opened.set()
            async for message in ws:
                frames.append(json.loads(message))
                if frames[-1]["event"] == "download_ready":
                    return frames
        return frames

    opened = asyncio.Event()
    plain = asyncio.create_task(asyncio.wait_for(listen(""), 30))
    await opened.wait()
    opened.clear()
    chatty = asyncio.create_task(asyncio.wait_for(listen("?progress=1"), 30))
    await opened.wait()
    async with httpx.AsyncClient(base_url=live.url) as http:
        await http.post("/v1/download/album/200001", json={"client_id": "both"})
    plain_frames, chatty_frames = await plain, await chatty
    assert [f["event"] for f in plain_frames] == ["download_ready"]
    assert {"started", "progress"} <= {f["event"] for f in chatty_frames}
    assert chatty_frames[-1] == plain_frames[0]
    seqs = [f["seq"] for f in chatty_frames]
    assert seqs == sorted(seqs)


@pytest.mark.parametrize("query", ["", "?progress=1"], ids=["finals-only", "progress"])
async def test_asking_again_on_the_same_socket_gets_the_final_again(live: LiveServer, query: str) -> None:
    async with connect(f"{live.ws_url}/ws/notifications/again{query}", compression=None) as ws, \
            httpx.AsyncClient(base_url=live.url) as http:

        async def final() -> dict:
            while True:
                frame = json.loads(await asyncio.wait_for(ws.recv(), 30))
                if frame["event"] == "download_ready":
                    return frame

        first = (await http.post("/v1/download/album/100001", json={"client_id": "again"})).json()
        heard = await final()
        again = (await http.post("/v1/download/album/100001", json={"client_id": "again"})).json()
        assert again["joined"] is True and again["job_id"] == first["job_id"] and again["state"] == "ready"
        repeated = await final()
    assert repeated["job_id"] == heard["job_id"] and repeated["file_name"] == heard["file_name"]
    assert repeated["joined"] is True
