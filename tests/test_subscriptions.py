"""Subscriptions (subscriptions.md): JM albums, JM favourites and booru searches, checked by the real
jmcomic and the real HTTP client against the doubles; new items become ordinary jobs."""

from __future__ import annotations

import asyncio
import hashlib
import io
import json
import threading
import time
import zipfile
from collections.abc import AsyncIterator, Iterator
from datetime import datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest
from PIL import Image, ImageChops, ImageStat

from app.jobs.models import CLIENT_ID_PATTERN
from tests.conftest import app_client, make_settings, wait_for
from tests.fakes.booru import make_post, make_posts
from tests.fakes.danbooru import DanbooruDouble
from tests.fakes.jm import FakeAccount, FakeChapter, JmDouble

PASSWORD = "correct horse battery"


@pytest.fixture
def danbooru() -> Iterator[DanbooruDouble]:
    with DanbooruDouble(make_posts(6, start_id=100)) as double:
        yield double


def sub_settings(tmp_path: Path, jm: JmDouble, **extra: Any) -> Any:
    values: dict[str, Any] = {"subscription_min_interval_seconds": 1, "subscription_tick_seconds": 3600}
    values.update(extra)
    return make_settings(tmp_path / "data", jm, **values)


@pytest.fixture
async def client(tmp_path: Path, jm_double: JmDouble, danbooru: DanbooruDouble) -> AsyncIterator[httpx.AsyncClient]:
    jm_double.accounts.add(FakeAccount("reader", PASSWORD, "4242", [("200001", "0")], {}))
    settings = sub_settings(tmp_path, jm_double, danbooru_url=danbooru.base_url, danbooru_api_rate=1000,
                            jm_username="reader", jm_password=PASSWORD)
    async with app_client(settings) as c:
        yield c


async def finished(client: httpx.AsyncClient, job_id: str) -> dict[str, Any]:
    async def done() -> dict[str, Any] | None:
        job = (await client.get(f"/v1/jobs/{job_id}")).json()
        return job if job["state"] in ("ready", "failed", "cancelled") else None

    job = await wait_for(done, timeout=30)
    assert job["state"] == "ready", job
    return job


async def archive_of(client: httpx.AsyncClient, job_id: str) -> zipfile.ZipFile:
    job = await finished(client, job_id)
    resp = await client.get(job["download_url"])
    assert resp.status_code == 200
    return zipfile.ZipFile(io.BytesIO(resp.content))


def pages(archive: zipfile.ZipFile) -> list[Image.Image]:
    names = sorted(n for n in archive.namelist() if n not in ("cover.jpg", "ComicInfo.xml"))
    return [Image.open(io.BytesIO(archive.read(n))).convert("RGB") for n in names]


def same_picture(got: Image.Image, expected: Image.Image) -> bool:
    return got.size == expected.size and max(ImageStat.Stat(ImageChops.difference(got, expected)).mean) < 10


def parse_time(text: str) -> float:
    return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


# --- jm_album ---------------------------------------------------------------------------------


async def test_a_new_chapter_becomes_one_job_of_exactly_that_chapter(client: httpx.AsyncClient,
                                                                   jm_double: JmDouble) -> None:
    resp = await client.post("/v1/subscriptions", json={"kind": "jm_album", "target": {"album_id": 200001},
                                                        "client_id": "my-phone"})
    assert resp.status_code == 201, resp.text
    sub = resp.json()
    assert sub["name"] == "Two Chapters" and sub["seen"] == {"chapters": ["200001", "200002"]}
    assert sub["last_jobs"] == [] and sub["last_new"] == 0 and sub["format"] == "zip"
    assert parse_time(sub["next_check_at"]) - parse_time(sub["last_checked_at"]) == pytest.approx(360 * 60)

    images_before = jm_double.hits("/media/photos")
    check = (await client.post(f"/v1/subscriptions/{sub['id']}/check")).json()
    assert check["new"] == [] and check["jobs"] == []
    assert jm_double.hits("/media/photos") == images_before  # nothing new: no image fetched

    jm_double.add_chapter("200001", FakeChapter("200009", "第3話", 3))
    check = (await client.post(f"/v1/subscriptions/{sub['id']}/check")).json()
    assert check["new"] == [{"album_id": "200001", "chapter_id": "200009", "title": "第3話"}]
    [job] = check["jobs"]
    assert job["kind"] == "album" and job["album_id"] == "200001" and job["chapters"] == ["200009"]
    assert check["subscription"]["seen"]["chapters"] == ["200001", "200002", "200009"]
    assert check["subscription"]["last_jobs"] == [job["job_id"]] and check["subscription"]["last_new"] == 1
    got = pages(await archive_of(client, job["job_id"]))
    expected = [jm_double.expected_image("200009", i) for i in (1, 2, 3)]
    assert len(got) == 3 and all(same_picture(g, e) for g, e in zip(got, expected, strict=True))

    again = (await client.post(f"/v1/subscriptions/{sub['id']}/check")).json()
    assert again["new"] == [] and again["jobs"] == []


async def test_seed_all_downloads_the_whole_album_in_the_chosen_format(client: httpx.AsyncClient) -> None:
    resp = await client.post("/v1/subscriptions", json={"kind": "jm_album", "target": {"album_id": "600001"},
                                                        "seed": "all", "format": "cbz"})
    assert resp.status_code == 201, resp.text
    sub = resp.json()
    [job_id] = sub["last_jobs"]
    assert sub["last_new"] == 2
    archive = await archive_of(client, job_id)
    assert "ComicInfo.xml" in archive.namelist() and len(pages(archive)) == 7


# --- bad input --------------------------------------------------------------------------------


@pytest.mark.parametrize(("body", "status", "words"), [
    ({"kind": "rss", "target": {}}, 422, "jm_album, jm_favorites, booru_query"),
    ({"kind": "jm_album"}, 422, "needs a target"),
    ({"kind": "jm_album", "target": {"album_id": "abc"}}, 422, "positive number"),
    ({"kind": "jm_album", "target": {"album_id": "１２３"}}, 422, "positive number"),
    ({"kind": "jm_album", "target": {"album_id": "200001"}, "caption": {}}, 422, "'caption' does not apply"),
    ({"kind": "jm_album", "target": {"album_id": "200001"}, "interval_minutes": 0.001}, 422, "at least"),
    ({"kind": "jm_album", "target": {"album_id": "200001"}, "seed": "some"}, 422, "seed"),
    ({"kind": "jm_album", "target": {"album_id": "200001"}, "format": "rar"}, 422, "format"),
    ({"kind": "jm_album", "target": {"album_id": "200001"}, "colour": "red"}, 422, "colour"),
    ({"kind": "jm_album", "target": {"album_id": "200001"}, "dest": "library"}, 422, "JMBOORU_LIBRARY_DIR"),
    ({"kind": "jm_album", "target": {"album_id": "200001"}, "notify": ["nonsense"]}, 422, "notify[0]"),
    ({"kind": "booru_query", "target": {"site": "myspace", "tags": "a"}}, 422, "danbooru"),
    ({"kind": "booru_query", "target": {"site": "danbooru", "tags": " \u200b "}}, 422, "tag"),
    ({"kind": "booru_query", "target": {"site": "danbooru", "tags": "a"}, "format": "cbz"}, 422, "'format'"),
    ({"kind": "booru_query", "target": {"site": "danbooru", "tags": "a"}, "max_images": 99999}, 422, "max_images"),
    ({"kind": "booru_query", "target": {"site": "danbooru", "tags": "a"}, "max_images": "5"}, 422, "max_images"),
    ({"kind": "jm_album", "target": {"album_id": "999999"}}, 404, "album"),
])
async def test_bad_subscriptions_are_refused_with_a_sentence_and_nothing_is_stored(
        client: httpx.AsyncClient, body: dict[str, Any], status: int, words: str) -> None:
    resp = await client.post("/v1/subscriptions", json=body)
    assert resp.status_code == status, resp.text
    assert words in resp.json()["detail"]
    assert (await client.get("/v1/subscriptions")).json() == []


async def test_patch_recomputes_the_schedule_and_refuses_fixed_keys(client: httpx.AsyncClient) -> None:
    sub = (await client.post("/v1/subscriptions", json={"kind": "jm_album", "target": {"album_id": "200001"}})).json()
    resp = await client.patch(f"/v1/subscriptions/{sub['id']}", json={"kind": "booru_query"})
    assert resp.status_code == 422 and "cannot change" in resp.json()["detail"]
    resp = await client.patch(f"/v1/subscriptions/{sub['id']}", json={"enabled": False})
    assert resp.status_code == 200 and resp.json()["next_check_at"] is None
    resp = await client.patch(f"/v1/subscriptions/{sub['id']}", json={"enabled": True, "interval_minutes": 30})
    body = resp.json()
    assert parse_time(body["next_check_at"]) - parse_time(body["last_checked_at"]) == pytest.approx(1800)
    assert (await client.patch("/v1/subscriptions/nope", json={"name": "x"})).status_code == 404
    assert (await client.delete(f"/v1/subscriptions/{sub['id']}")).status_code == 204
    assert (await client.get(f"/v1/subscriptions/{sub['id']}")).status_code == 404
    assert (await client.delete(f"/v1/subscriptions/{sub['id']}")).status_code == 404


async def test_a_client_id_the_downloads_accept_is_accepted_by_subscriptions(client: httpx.AsyncClient) -> None:
    job = await client.post("/v1/download/album/200001", json={"client_id": "me@phone"})
    assert job.status_code == 202, job.text
    created = await client.post("/v1/subscriptions", json={"kind": "jm_album", "target": {"album_id": "200001"},
                                                           "client_id": "me@phone"})
    assert created.status_code == 201, created.text
    assert created.json()["client_id"] == "me@phone"
    changed = await client.patch(f"/v1/subscriptions/{created.json()['id']}", json={"client_id": "you@desk"})
    assert changed.status_code == 200 and changed.json()["client_id"] == "you@desk"
    for refused in (await client.post("/v1/download/album/200001", json={"client_id": "me phone"}),
                    await client.patch(f"/v1/subscriptions/{created.json()['id']}", json={"client_id": "me phone"})):
        assert refused.status_code == 422 and "client_id" in refused.json()["detail"]
    # Every body and query parameter that takes a client id is checked against the same pattern.
    document = (await client.get("/openapi.json")).json()
    patterns: set[str] = set()

    def collect(node: Any) -> None:
        if isinstance(node, dict):
            for key, value in node.items():
                if key == "client_id" and isinstance(value, dict):
                    patterns.update(v["pattern"] for v in [value, *value.get("anyOf", [])] if "pattern" in v)
                collect(value)
            if node.get("name") == "client_id" and node.get("in") == "query":
                schema = node["schema"]
                patterns.update(v["pattern"] for v in [schema, *schema.get("anyOf", [])] if "pattern" in v)
        elif isinstance(node, list):
            for item in node:
                collect(item)

    collect(document)
    assert patterns == {CLIENT_ID_PATTERN}


# --- jm_favorites -----------------------------------------------------------------------------


async def test_favourites_new_album_whole_and_new_chapter_of_a_known_one(client: httpx.AsyncClient,
                                                                        jm_double: JmDouble) -> None:
    resp = await client.post("/v1/subscriptions", json={"kind": "jm_favorites", "target": {}})
    assert resp.status_code == 201, resp.text
    sub = resp.json()
    assert sub["name"] == "JM favourites" and sub["seen"] == {"albums": {"200001": ["200001", "200002"]}}

    details_before = jm_double.hits("/album")
    check = (await client.post(f"/v1/subscriptions/{sub['id']}/check")).json()
    assert check["jobs"] == [] and jm_double.hits("/album") == details_before  # latest_ep_aid unchanged: no read

    jm_double.accounts.add_favorite("reader", "100001")
    jm_double.add_chapter("200001", FakeChapter("200010", "第3話", 2))
    check = (await client.post(f"/v1/subscriptions/{sub['id']}/check")).json()
    jobs = {j["album_id"]: j for j in check["jobs"]}
    assert set(jobs) == {"100001", "200001"}
    assert jobs["200001"]["chapters"] == ["200010"] and jobs["100001"]["chapters"] == ["100001"]
    assert len(pages(await archive_of(client, jobs["200001"]["job_id"]))) == 2
    assert len(pages(await archive_of(client, jobs["100001"]["job_id"]))) == 5
    assert check["subscription"]["seen"]["albums"]["200001"][-1] == "200010"


async def test_favourites_without_an_account_is_409_naming_the_settings(tmp_path: Path, jm_double: JmDouble) -> None:
    async with app_client(sub_settings(tmp_path, jm_double)) as c:
        resp = await c.post("/v1/subscriptions", json={"kind": "jm_favorites"})
        assert resp.status_code == 409 and "JMBOORU_JM_USERNAME" in resp.json()["detail"]
        assert (await c.get("/v1/subscriptions")).json() == []


# --- booru_query ------------------------------------------------------------------------------


async def test_new_posts_above_the_high_water_mark_become_one_dataset_of_exactly_them(
        client: httpx.AsyncClient, danbooru: DanbooruDouble) -> None:
    resp = await client.post("/v1/subscriptions", json={
        "kind": "booru_query", "target": {"site": "danbooru", "tags": "1girl"},
        "filters": {"rating": ["general"]}, "caption": {"separator": " | "}})
    assert resp.status_code == 201, resp.text
    sub = resp.json()
    assert sub["seen"] == {"high_water": 105} and sub["name"] == "danbooru: 1girl"
    assert sub["filters"] == {"rating": ["general"]} and sub["format"] is None

    fresh = [make_post(200, ["1girl", "smile"]), make_post(201, ["1girl"], rating="explicit"),
             make_post(202, ["1girl", "hat"]), make_post(203, ["cat"])]
    danbooru.add_posts(fresh)
    check = (await client.post(f"/v1/subscriptions/{sub['id']}/check")).json()
    assert [n["post_id"] for n in check["new"]] == [202, 200]
    [job] = check["jobs"]
    assert job["kind"] == "booru" and job["skipped"] == 0
    assert check["subscription"]["seen"] == {"high_water": 202}  # the filtered-out 201 counts as seen
    archive = await archive_of(client, job["job_id"])
    images = {n: archive.read(n) for n in archive.namelist() if not n.endswith(".txt")}
    assert {hashlib.md5(d).hexdigest() for d in images.values()} == {fresh[0]["md5"], fresh[2]["md5"]}
    assert archive.read(f"{fresh[2]['md5']}.txt").decode() == "1girl | hat"

    again = (await client.post(f"/v1/subscriptions/{sub['id']}/check")).json()
    assert again["new"] == [] and again["jobs"] == []


async def test_more_new_posts_than_max_images_keeps_the_newest_and_says_how_many_were_skipped(
        client: httpx.AsyncClient, danbooru: DanbooruDouble) -> None:
    sub = (await client.post("/v1/subscriptions", json={
        "kind": "booru_query", "target": {"site": "danbooru", "tags": "1girl"}, "max_images": 2})).json()
    danbooru.add_posts([make_post(300 + i, ["1girl"]) for i in range(5)])
    check = (await client.post(f"/v1/subscriptions/{sub['id']}/check")).json()
    assert [n["post_id"] for n in check["new"]] == [304, 303] and check["jobs"][0]["skipped"] == 3
    assert check["subscription"]["seen"] == {"high_water": 304}
    await finished(client, check["jobs"][0]["job_id"])


async def test_a_failing_upstream_is_recorded_with_back_off_and_the_next_check_recovers(
        client: httpx.AsyncClient, danbooru: DanbooruDouble) -> None:
    danbooru.fail_next(20, status=503)
    refused = await client.post("/v1/subscriptions", json={
        "kind": "booru_query", "target": {"site": "danbooru", "tags": "1girl"}})
    assert refused.status_code in (502, 503, 504) and refused.json()["detail"]
    assert (await client.get("/v1/subscriptions")).json() == []  # creation failed: nothing stored
    danbooru.clear_faults()
    sub = (await client.post("/v1/subscriptions", json={
        "kind": "booru_query", "target": {"site": "danbooru", "tags": "1girl"}, "interval_minutes": 10})).json()
    danbooru.fail_next(20, status=500)
    resp = await client.post(f"/v1/subscriptions/{sub['id']}/check")
    assert resp.status_code in (502, 503, 504), resp.text
    failed = (await client.get(f"/v1/subscriptions/{sub['id']}")).json()
    assert failed["consecutive_failures"] == 1 and failed["last_error"] and "http" not in failed["last_error"]
    assert parse_time(failed["next_check_at"]) - parse_time(failed["last_checked_at"]) == pytest.approx(600)
    assert (await client.post(f"/v1/subscriptions/{sub['id']}/check")).status_code >= 500
    twice = (await client.get(f"/v1/subscriptions/{sub['id']}")).json()
    assert twice["consecutive_failures"] == 2
    assert parse_time(twice["next_check_at"]) - parse_time(twice["last_checked_at"]) == pytest.approx(1200)
    danbooru.clear_faults()
    ok = await client.post(f"/v1/subscriptions/{sub['id']}/check")
    assert ok.status_code == 200, ok.text
    body = ok.json()["subscription"]
    assert body["consecutive_failures"] == 0 and body["last_error"] is None
    assert parse_time(body["next_check_at"]) - parse_time(body["last_checked_at"]) == pytest.approx(600)


# --- schedule, restart, notifications -----------------------------------------------------------


class Listener:
    """A local HTTP endpoint that records what apprise's json:// sends."""

    def __init__(self) -> None:
        received: list[dict[str, Any]] = []
        self.received = received

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802
                length = int(self.headers.get("Content-Length") or 0)
                received.append(json.loads(self.rfile.read(length) or b"{}"))
                self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


async def test_the_scheduler_checks_due_subscriptions_and_notifies_through_apprise(
        tmp_path: Path, jm_double: JmDouble) -> None:
    listener = Listener()
    try:
        settings = sub_settings(tmp_path, jm_double, subscription_tick_seconds=0.2)
        async with app_client(settings) as c:
            sub = (await c.post("/v1/subscriptions", json={
                "kind": "jm_album", "target": {"album_id": "200001"}, "interval_minutes": 1 / 60,
                "notify": [f"json://127.0.0.1:{listener.port}/hook"]})).json()
            assert listener.received == []  # the first check found nothing new: no notification
            jm_double.add_chapter("200001", FakeChapter("200011", "第4話", 1))

            async def started() -> dict[str, Any] | None:
                body = (await c.get(f"/v1/subscriptions/{sub['id']}")).json()
                return body if body["last_jobs"] else None

            checked = await wait_for(started, timeout=15)
            await finished(c, checked["last_jobs"][0])
            await wait_for(lambda: listener.received, timeout=10)
            [message] = listener.received
            assert "Two Chapters" in message["title"] and "第4話" in message["message"]
    finally:
        listener.close()


async def test_subscriptions_survive_a_restart_and_an_overdue_check_runs_at_the_first_tick(
        tmp_path: Path, jm_double: JmDouble) -> None:
    settings = sub_settings(tmp_path, jm_double)
    async with app_client(settings) as c:
        sub = (await c.post("/v1/subscriptions", json={"kind": "jm_album", "target": {"album_id": "200001"},
                                                       "interval_minutes": 1 / 60, "client_id": "desk"})).json()
    jm_double.add_chapter("200001", FakeChapter("200012", "第5話", 1))
    due = parse_time(sub["next_check_at"])
    await wait_for(lambda: time.time() > due + 1.2, timeout=5)  # overdue while no server runs (times in whole s)
    async with app_client(settings) as c:
        async def checked() -> dict[str, Any] | None:
            body = (await c.get(f"/v1/subscriptions/{sub['id']}")).json()
            return body if body["last_jobs"] else None

        body = await wait_for(checked, timeout=15)
        assert body["client_id"] == "desk" and body["seen"]["chapters"][-1] == "200012"
        assert body["created_at"] == sub["created_at"]
        await finished(c, body["last_jobs"][0])


async def test_the_api_key_guards_subscriptions(tmp_path: Path, jm_double: JmDouble) -> None:
    async with app_client(sub_settings(tmp_path, jm_double, api_key="k" * 20)) as c:
        assert (await c.get("/v1/subscriptions")).status_code == 401
        assert (await c.get("/v1/subscriptions", headers={"X-API-Key": "k" * 20})).status_code == 200


# --- scale-out: two API processes on one Redis ------------------------------------------------------


async def test_two_api_processes_on_redis_run_a_due_check_exactly_once(tmp_path: Path, jm_double: JmDouble) -> None:
    import redis as redis_sync

    from tests.cluster import RedisServer

    server = RedisServer(tmp_path)
    try:
        settings = sub_settings(tmp_path, jm_double, redis_url=server.url, subscription_tick_seconds=0.05)
        async with app_client(settings) as first, app_client(settings) as second:
            sub = (await first.post("/v1/subscriptions", json={"kind": "jm_album", "target": {"album_id": "200001"},
                                                               "interval_minutes": 60})).json()
            assert (await second.get(f"/v1/subscriptions/{sub['id']}")).json()["id"] == sub["id"]
            # Make it due now, as if an hour had passed (the document and its due time, as the store keeps them).
            r = redis_sync.Redis.from_url(server.url, decode_responses=True)
            doc = json.loads(r.hget("jmbooru:subscriptions", sub["id"]))
            doc["next_check_at"] = time.time() - 1
            r.hset("jmbooru:subscriptions", sub["id"], json.dumps(doc))
            r.zadd("jmbooru:subscriptions:due", {sub["id"]: doc["next_check_at"]})
            before = jm_double.hits("/album")

            await wait_for(lambda: jm_double.hits("/album") > before, timeout=10)

            async def rescheduled() -> bool:  # an hour on, by whichever process ran it
                body = (await second.get(f"/v1/subscriptions/{sub['id']}")).json()
                return parse_time(body["next_check_at"]) > time.time() + 3000

            await wait_for(rescheduled, timeout=10)
            # Both processes tick every 50 ms; for one second, neither may check it again.
            await asyncio.sleep(1.0)  # a negative check: time itself (about 20 ticks of each)
            assert jm_double.hits("/album") - before == 1
            r.close()
    finally:
        server.stop()


# --- the command line ---------------------------------------------------------------------------


def test_jmbooru_watch_adds_lists_checks_and_removes_on_a_running_server(
        tmp_path: Path, jm_double: JmDouble, capsys: pytest.CaptureFixture[str]) -> None:
    from app.cli import main
    from tests.conftest import LiveServer

    with LiveServer(sub_settings(tmp_path, jm_double)) as server:
        cli = ["watch", "--server", server.url]
        assert main([*cli, "add", "album", "200001", "--interval", "90"]) == 0
        sub_id = capsys.readouterr().out.split()[0]
        assert main([*cli, "ls"]) == 0
        listing = capsys.readouterr().out
        assert sub_id in listing and "Two Chapters" in listing and "jm_album" in listing
        assert main([*cli, "check", sub_id]) == 0
        assert capsys.readouterr().out.strip() == "nothing new"
        jm_double.add_chapter("200001", FakeChapter("200013", "第6話", 1))
        assert main([*cli, "check", sub_id]) == 0
        assert "1 new, 1 download started" in capsys.readouterr().out
        with pytest.raises(SystemExit) as refused:
            main([*cli, "add", "album", "abc"])
        assert "positive number" in str(refused.value)
        assert main([*cli, "rm", sub_id]) == 0
        assert main([*cli, "ls"]) == 0
        assert "no subscriptions" in capsys.readouterr().out
    with pytest.raises(SystemExit) as nobody:
        main(["watch", "--server", server.url, "ls"])
    assert "no jmbooru server answers" in str(nobody.value)
