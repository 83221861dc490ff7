"""POST /v1/download/url: a pasted link starts the job it points at (JM and booru doubles)."""

from __future__ import annotations

import io
import zipfile
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import pytest

from tests.conftest import app_client, make_settings, wait_for
from tests.fakes.booru import make_posts
from tests.fakes.danbooru import DanbooruDouble
from tests.fakes.gelbooru_v02 import GelbooruV02Double
from tests.fakes.jm import JmDouble


@pytest.fixture
def safebooru() -> Iterator[GelbooruV02Double]:
    with GelbooruV02Double(make_posts(12)) as double:
        yield double


@pytest.fixture
def danbooru() -> Iterator[DanbooruDouble]:
    with DanbooruDouble(make_posts(8, start_id=5000)) as double:
        yield double


@pytest.fixture
async def http(tmp_path: Path, jm_double: JmDouble, safebooru: GelbooruV02Double,
               danbooru: DanbooruDouble) -> AsyncIterator[httpx.AsyncClient]:
    settings = make_settings(tmp_path / "data", jm_double, safebooru_url=safebooru.base_url, safebooru_api_rate=100,
                             danbooru_url=danbooru.base_url, danbooru_api_rate=100)
    async with app_client(settings) as client:
        yield client


async def paste(http: httpx.AsyncClient, url: str, **options: object) -> httpx.Response:
    return await http.post("/v1/download/url", json={"url": url, **options})


async def finished(http: httpx.AsyncClient, job_id: str) -> dict:
    async def ended() -> dict | None:
        job = (await http.get(f"/v1/jobs/{job_id}")).json()
        return job if job["state"] not in ("queued", "running", "zipping") else None

    return await wait_for(ended, timeout=30)


async def test_a_jm_album_link_starts_that_album_with_the_other_keys(http: httpx.AsyncClient) -> None:
    resp = await paste(http, "https://18comic.vip/album/100001/plain-album", format="cbz", client_id="phone")
    assert resp.status_code == 202, resp.text
    body = resp.json()
    assert body["resolved"] == {"kind": "jm_album", "album_id": "100001"}
    assert body["album_id"] == "100001" and body["status_url"] == f"/v1/jobs/{body['job_id']}"
    job = (await http.get(body["status_url"])).json()
    assert job["params"]["format"] == "cbz" and job["params"]["album_id"] == "100001"
    assert (await http.get("/v1/jobs", params={"client_id": "phone"})).json()["jobs"][0]["job_id"] == body["job_id"]


@pytest.mark.parametrize("domain", ["18comic.vip", "jmcomic-zzz.one"])
async def test_a_jm_chapter_link_starts_its_album_with_that_chapter(http: httpx.AsyncClient, domain: str) -> None:
    resp = await paste(http, f"https://{domain}/photo/200002")
    assert resp.status_code == 202, resp.text
    body = resp.json()
    assert body["resolved"] == {"kind": "jm_chapter", "chapter_id": "200002", "album_id": "200001"}
    job = await finished(http, body["job_id"])
    assert job["state"] == "ready" and job["params"]["chapters"] == ["200002"]
    archive = zipfile.ZipFile(io.BytesIO((await http.get(job["download_url"])).content))
    assert len([n for n in archive.namelist() if n != "cover.jpg"]) == 2  # chapter 200002 has 2 pages


async def test_links_to_what_jm_does_not_have_are_404_and_make_no_job(http: httpx.AsyncClient) -> None:
    assert (await paste(http, "https://18comic.vip/album/999999")).status_code == 404
    assert (await paste(http, "https://18comic.vip/photo/999998")).status_code == 404
    assert (await http.get("/v1/jobs")).json()["jobs"] == []


async def test_a_booru_list_link_starts_a_dataset_of_those_tags(http: httpx.AsyncClient,
                                                               danbooru: DanbooruDouble) -> None:
    resp = await paste(http, f"{danbooru.base_url}/posts?tags=1girl&page=2", max_images=3)
    assert resp.status_code == 202, resp.text
    body = resp.json()
    assert body["resolved"] == {"kind": "booru_posts", "site": "danbooru", "tags": "1girl"}
    job = await finished(http, body["job_id"])
    assert job["state"] == "ready" and job["params"]["site"] == "danbooru" and job["done"] == 3


async def test_a_post_link_downloads_that_one_post(http: httpx.AsyncClient, safebooru: GelbooruV02Double) -> None:
    wanted = safebooru.posts[4]
    resp = await paste(http, f"{safebooru.base_url}/index.php?page=post&s=view&id={wanted['id']}")
    assert resp.status_code == 202, resp.text
    body = resp.json()
    assert body["resolved"] == {"kind": "booru_post", "site": "safebooru", "tags": f"id:{wanted['id']}",
                                "post_id": str(wanted["id"])}
    job = await finished(http, body["job_id"])
    assert job["state"] == "ready", job
    archive = zipfile.ZipFile(io.BytesIO((await http.get(job["download_url"])).content))
    assert sorted(archive.namelist()) == sorted([f"{wanted['md5']}.png", f"{wanted['md5']}.txt"])


async def test_a_pool_link_starts_that_pools_book(http: httpx.AsyncClient, danbooru: DanbooruDouble) -> None:
    danbooru.add_pool(3, "Pasted_Pool", [p["id"] for p in danbooru.posts[:2]])
    resp = await paste(http, f"{danbooru.base_url}/pools/3", format="zip")
    assert resp.status_code == 202, resp.text
    assert resp.json()["resolved"] == {"kind": "booru_pool", "site": "danbooru", "pool_id": 3}
    job = await finished(http, resp.json()["job_id"])
    assert job["state"] == "ready" and job["file_name"].endswith(".zip"), job
    resp = await paste(http, f"{danbooru.base_url}/pools/4")
    assert resp.status_code == 404 and "pool 4" in resp.json()["detail"]


@pytest.mark.parametrize(("url", "options", "words"), [
    ("https://example.com/gallery/1", {}, ["cannot use this link", "/album/<id>", "/posts?tags="]),
    ("https://18comic.vip/album/100001", {"format": "epub"}, ["format"]),
    ("https://18comic.vip/album/100001", {"colour": "red"}, ["colour"]),
    ("https://18comic.vip/photo/200002", {"chapters": ["200001"]}, ["chapter link already picks"]),
    ("https://safebooru.org/index.php?page=post&s=list&tags=1girl", {"tags": "cat"}, ["already gives the tags"]),
])
async def test_unusable_links_and_options_are_422_with_a_sentence(http: httpx.AsyncClient, url: str,
                                                                  options: dict, words: list[str]) -> None:
    resp = await paste(http, url, **options)
    assert resp.status_code == 422, resp.text
    detail = resp.json()["detail"]
    assert isinstance(detail, str) and all(w in detail for w in words), detail
    assert (await http.get("/v1/jobs")).json()["jobs"] == []
