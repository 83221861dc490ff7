"""Gelbooru dataset jobs end to end: POST, WebSocket progress, the archive's layout and captions."""

from __future__ import annotations

import hashlib
import html
import io
import zipfile
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.conftest import LiveServer, make_settings
from tests.fakes.gelbooru import GelbooruDouble, make_posts
from tests.fakes.jm import JmDouble
from tests.wsclient import follow


@pytest.fixture
def gb() -> Iterator[GelbooruDouble]:
    with GelbooruDouble(make_posts(40, ext="mixed")) as double:
        yield double


@pytest.fixture
def booru_live(tmp_path: Path, jm_double: JmDouble, gb: GelbooruDouble) -> Iterator[LiveServer]:
    settings = make_settings(tmp_path, jm_double, gelbooru_url=gb.base_url, gelbooru_api_key=gb.api_key,
                             gelbooru_user_id=gb.user_id, gelbooru_api_rate=100, max_images_per_job=25)
    with LiveServer(settings) as live:
        yield live


async def test_dataset_job_archive_has_verified_images_and_captions(
    booru_live: LiveServer, gb: GelbooruDouble
) -> None:
    body = {"tags": "1girl", "max_images": 12, "client_id": "trainer",
            "caption": {"separator": ", ", "escape_parentheses": False}, "filters": {"min_score": 0}}
    async with httpx.AsyncClient(base_url=booru_live.url) as http:
        started = await http.post("/v1/download/booru/gelbooru", json=body)
        assert started.status_code == 202, started.text
        assert started.json()["status"] == "processing"
        frames = await follow(f"{booru_live.ws_url}/ws/jobs/{started.json()['job_id']}")
        final = frames[-1]
        assert final["event"] == "download_ready", final
        assert final["done"] == final["total"] == 12
        assert any(f["event"] == "progress" and f["total"] == 12 for f in frames)
        archive = await http.get(final["download_url"])
    zf = zipfile.ZipFile(io.BytesIO(archive.content))
    names = zf.namelist()
    images = [n for n in names if not n.endswith(".txt")]
    assert len(images) == 12 and len(names) == 24
    by_md5 = {p["md5"]: p for p in gb.posts}
    for name in images:
        stem = name.rsplit(".", 1)[0]
        data = zf.read(name)
        assert hashlib.md5(data).hexdigest() == stem
        caption = zf.read(f"{stem}.txt").decode("utf-8")
        site_tags = [html.unescape(t) for t in by_md5[stem]["tags"].split()]
        expected_tags = [t.replace("_", " ") if len(t) > 3 else t for t in site_tags]
        assert caption.split(", ") == expected_tags


async def test_max_images_above_the_limit_is_422(booru_live: LiveServer) -> None:
    async with httpx.AsyncClient(base_url=booru_live.url) as http:
        resp = await http.post("/v1/download/booru/gelbooru", json={"tags": "1girl", "max_images": 26})
    assert resp.status_code == 422 and "JMBOORU_MAX_IMAGES_PER_JOB" in resp.json()["detail"]


async def test_unknown_site_and_bad_options_are_refused(booru_live: LiveServer) -> None:
    async with httpx.AsyncClient(base_url=booru_live.url) as http:
        assert (await http.post("/v1/download/booru/nosuchbooru", json={"tags": "a"})).status_code == 404
        bad = await http.post("/v1/download/booru/gelbooru",
                              json={"tags": "a", "caption": {"drop_categories": ["colours"]}})
        assert bad.status_code == 422
        assert (await http.post("/v1/download/booru/gelbooru", json={"tags": ""})).status_code == 422


async def test_tags_that_match_nothing_end_the_job_with_a_sentence(booru_live: LiveServer) -> None:
    async with httpx.AsyncClient(base_url=booru_live.url) as http:
        started = await http.post("/v1/download/booru/gelbooru", json={"tags": "no_such_tag_anywhere"})
        assert started.status_code == 202, started.text
        frames = await follow(f"{booru_live.ws_url}/ws/jobs/{started.json()['job_id']}")
    assert frames[-1]["event"] == "failed"
    assert "no_such_tag_anywhere" in frames[-1]["message"]


async def test_missing_credentials_are_502_at_once(tmp_path: Path, jm_double: JmDouble, gb: GelbooruDouble) -> None:
    settings = make_settings(tmp_path, jm_double, gelbooru_url=gb.base_url)
    with LiveServer(settings) as live:
        async with httpx.AsyncClient(base_url=live.url) as http:
            resp = await http.post("/v1/download/booru/gelbooru", json={"tags": "1girl"})
    assert resp.status_code == 502
    assert "JMBOORU_GELBOORU_API_KEY" in resp.json()["detail"]
