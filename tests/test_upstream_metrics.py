"""``jmbooru_upstream_requests_total{site,outcome}`` counts every HTTP call to an upstream, and
``jmbooru_upstream_retries_total{site}`` every attempt after the first (api.md "Monitoring").

Each test compares the counters with what the loopback doubles saw: every request a double
answered is one count, whatever its outcome."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from app.metrics import REGISTRY
from tests.conftest import app_client, make_settings, wait_for
from tests.fakes.booru import make_posts
from tests.fakes.gelbooru import GelbooruDouble
from tests.fakes.jm import JmDouble


def requests(site: str, outcome: str | None = None) -> float:
    total = 0.0
    for metric in REGISTRY.collect():
        for sample in metric.samples:
            if (sample.name == "jmbooru_upstream_requests_total" and sample.labels.get("site") == site
                    and (outcome is None or sample.labels.get("outcome") == outcome)):
                total += sample.value
    return total


def retries(site: str) -> float:
    return REGISTRY.get_sample_value("jmbooru_upstream_retries_total", {"site": site}) or 0.0


@pytest.fixture
def gelbooru() -> Iterator[GelbooruDouble]:
    with GelbooruDouble(make_posts(12)) as double:
        yield double


def booru_settings(tmp_path: Path, jm: JmDouble, gb: GelbooruDouble, **extra: object):  # type: ignore[no-untyped-def]
    return make_settings(tmp_path / "data", jm, gelbooru_url=gb.base_url, gelbooru_api_key=gb.api_key,
                         gelbooru_user_id=gb.user_id, gelbooru_api_rate=100, **extra)


async def ready(client: httpx.AsyncClient, job_id: str) -> None:
    async def done() -> bool:
        state = (await client.get(f"/v1/jobs/{job_id}")).json()["state"]
        assert state not in ("failed", "cancelled"), state
        return bool(state == "ready")

    await wait_for(done, timeout=60)


async def test_every_jm_read_is_counted(tmp_path: Path, jm_double: JmDouble) -> None:
    api, images = requests("jm"), requests("jm-images")
    async with app_client(make_settings(tmp_path, jm_double)) as client:
        assert (await client.get("/v1/info/100001")).status_code == 200
        assert (await client.get("/v1/search/hero/1")).status_code == 200
        assert (await client.get("/v1/get/cover/100001")).status_code == 200
    # The client's start-up calls (cookies) included: every request JM's API double answered.
    assert requests("jm") - api == jm_double.hits("") - jm_double.hits("/media/") >= 3
    assert requests("jm-images") - images == jm_double.hits("/media/") == 1


async def test_an_album_download_counts_its_page_images(tmp_path: Path, jm_double: JmDouble) -> None:
    images_ok = requests("jm-images", "ok")
    async with app_client(make_settings(tmp_path, jm_double)) as client:
        job = (await client.post("/v1/download/album/200001")).json()
        await ready(client, job["job_id"])
    pages = jm_double.hits("/media/photos/")
    assert pages >= 2
    assert requests("jm-images", "ok") - images_ok == pages + jm_double.hits("/media/albums/")


async def test_booru_searches_datasets_and_thumbnails_are_counted(
    tmp_path: Path, jm_double: JmDouble, gelbooru: GelbooruDouble
) -> None:
    before = requests("gelbooru")
    async with app_client(booru_settings(tmp_path, jm_double, gelbooru)) as client:
        page = await client.get("/v1/booru/gelbooru/posts", params={"tags": "1girl"})
        assert page.status_code == 200
        preview_url = page.json()["posts"][0]["preview_url"]
        assert (await client.get("/v1/booru/gelbooru/preview", params={"url": preview_url})).status_code == 200
        job = (await client.post("/v1/download/booru/gelbooru", json={"tags": "1girl", "max_images": 5})).json()
        await ready(client, job["job_id"])
    assert gelbooru.hits("image") >= 5
    assert requests("gelbooru") - before == gelbooru.hits("all")


async def test_retries_are_counted_and_failed_attempts_too(
    tmp_path: Path, jm_double: JmDouble, gelbooru: GelbooruDouble
) -> None:
    jm_retries, booru_retries = retries("jm"), retries("gelbooru")
    jm_failed, booru_failed = requests("jm", "502"), requests("gelbooru", "503")
    jm_double.fail("/album", status=502, times=1)
    gelbooru.fail_next(2, status=503)
    settings = booru_settings(tmp_path, jm_double, gelbooru, jm_retry_times=1)
    async with app_client(settings) as client:
        assert (await client.get("/v1/info/100001")).status_code == 200  # the second try went through
        assert (await client.get("/v1/booru/gelbooru/posts", params={"tags": "1girl"})).status_code == 200
    assert retries("jm") - jm_retries == 1
    assert requests("jm", "502") - jm_failed == 1
    assert retries("gelbooru") - booru_retries == 2
    assert requests("gelbooru", "503") - booru_failed == 2
