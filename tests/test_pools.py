"""Booru pools as books (library.md): pages in pool order, md5-verified, skipped posts named, every
format, the Danbooru and Moebooru doubles serving pools the way gallery-dl's extractors read them."""

from __future__ import annotations

import hashlib
import io
import zipfile
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
from pypdf import PdfReader

from tests.conftest import app_client, make_settings, wait_for
from tests.fakes.booru import make_post
from tests.fakes.danbooru import DanbooruDouble
from tests.fakes.moebooru import MoebooruDouble
from tests.test_album_formats import assert_valid_comic_info, read_with_comictagger

TAG_TYPES = {"ink_artist": 1, "miku": 4, "rin": 4, "vocaloid": 3, "smile": 0, "hat": 0, "1girl": 0}


def pool_posts() -> list[dict[str, Any]]:
    posts = [make_post(i, ["1girl", "ink_artist", "miku", "smile" if i % 2 else "hat", "vocaloid"],
                       ext="jpg" if i == 12 else "png", size=(60 + i, 80 + i)) for i in range(10, 16)]
    posts[4]["_restricted"] = True  # post 14: banned, no file on Danbooru
    return posts


@contextmanager
def short_pool_double() -> Iterator[DanbooruDouble]:
    """Danbooru with these posts and pool 7 of three pages (13, 10, 12): the pool other tests file."""
    with DanbooruDouble(pool_posts(), tag_types=TAG_TYPES) as double:
        double.add_pool(7, "Miku's_Comic_Day", [13, 10, 12])
        yield double


@pytest.fixture
def danbooru() -> Iterator[DanbooruDouble]:
    with DanbooruDouble(pool_posts(), tag_types=TAG_TYPES) as double:
        # Page order is not id order; 99 was expunged (the site no longer returns it); 14 is banned.
        double.add_pool(7, "Miku's_Comic_Day", [13, 10, 99, 12, 14, 11], description="A day with Miku.")
        double.add_pool(8, "Rin_Side_Story", [15])
        yield double


@pytest.fixture
def yandere() -> Iterator[MoebooruDouble]:
    posts = pool_posts()
    posts[2]["_deleted"] = True  # post 12 deleted on yande.re
    with MoebooruDouble(posts, tag_types=TAG_TYPES) as double:
        double.add_pool(3, "Sequence_Pool", [15, 11, 12, 10])
        yield double


@pytest.fixture
async def client(tmp_path: Path, danbooru: DanbooruDouble, yandere: MoebooruDouble) -> AsyncIterator[httpx.AsyncClient]:
    settings = make_settings(tmp_path / "data", None, danbooru_url=danbooru.base_url, danbooru_api_rate=1000,
                             yandere_url=yandere.base_url, yandere_api_rate=1000)
    async with app_client(settings) as c:
        yield c


async def ready(client: httpx.AsyncClient, resp: httpx.Response) -> dict[str, Any]:
    assert resp.status_code == 202, resp.text
    job_id = resp.json()["job_id"]

    async def done() -> dict[str, Any] | None:
        job = (await client.get(f"/v1/jobs/{job_id}")).json()
        return job if job["state"] in ("ready", "failed", "cancelled") else None

    job = await wait_for(done, timeout=30)
    assert job["state"] == "ready", job
    return job


def md5(data: bytes) -> str:
    return hashlib.md5(data).hexdigest()


def by_id(double: Any) -> dict[int, dict[str, Any]]:
    return {p["id"]: p for p in double.posts}


async def test_a_pool_is_a_cbz_in_pool_order_with_comicinfo_and_skipped_posts_named(
        client: httpx.AsyncClient, danbooru: DanbooruDouble, tmp_path: Path) -> None:
    job = await ready(client, await client.post("/v1/download/booru/danbooru/pool/7", json={}))
    assert job["kind"] == "pool" and job["title"] == "Miku's Comic Day"
    assert job["done"] == job["total"] == 4
    assert [s["post_id"] for s in job["skipped"]] == [99, 14] and all(s["reason"] for s in job["skipped"])
    assert "skipped" in job["message"] and job["file_name"].endswith(".cbz")
    resp = await client.get(job["download_url"])
    assert resp.headers["content-type"] == "application/vnd.comicbook+zip"
    archive = zipfile.ZipFile(io.BytesIO(resp.content))
    pages = sorted(n for n in archive.namelist() if n != "ComicInfo.xml")
    assert pages == ["00001.png", "00002.png", "00003.jpg", "00004.png"]  # no gap, each with its own extension
    posts = by_id(danbooru)
    assert [md5(archive.read(n)) for n in pages] == [posts[i]["md5"] for i in (13, 10, 12, 11)]

    root = assert_valid_comic_info(archive.read("ComicInfo.xml"))
    assert root.findtext("Title") == root.findtext("Series") == "Miku's Comic Day"
    assert root.findtext("Number") == "1" and root.findtext("Writer") == "ink artist"
    assert root.findtext("Characters") == "miku" and set(root.findtext("Tags").split(",")) == {"1girl", "smile", "hat"}
    assert root.findtext("Web") == f"{danbooru.base_url}/pools/7"
    listed = root.find("Pages")
    assert [(p.get("ImageWidth"), p.get("ImageHeight")) for p in listed] == [
        (str(posts[i]["width"]), str(posts[i]["height"])) for i in (13, 10, 12, 11)]
    assert listed[0].get("Type") == "FrontCover"

    path = tmp_path / "pool.cbz"
    path.write_bytes(resp.content)
    cbz, md = read_with_comictagger(path)
    assert md.series == "Miku's Comic Day" and md.issue == "1" and md.web_links[0].url == f"{danbooru.base_url}/pools/7"
    assert [c.person for c in md.credits if "Writer" in c.role] == ["ink artist"]
    assert len(md.pages) == 4 and cbz.get_number_of_pages() == 4


async def test_zip_pdf_and_dataset_formats(client: httpx.AsyncClient, danbooru: DanbooruDouble) -> None:
    posts = by_id(danbooru)
    job = await ready(client, await client.post("/v1/download/booru/danbooru/pool/7", json={"format": "zip"}))
    archive = zipfile.ZipFile(io.BytesIO((await client.get(job["download_url"])).content))
    names = sorted(n for n in archive.namelist() if n != "ComicInfo.xml")
    assert [md5(archive.read(n)) for n in names] == [posts[i]["md5"] for i in (13, 10, 12, 11)]

    job = await ready(client, await client.post("/v1/download/booru/danbooru/pool/7", json={"format": "pdf"}))
    pdf = PdfReader(io.BytesIO((await client.get(job["download_url"])).content))
    assert [(round(float(p.mediabox.width)), round(float(p.mediabox.height))) for p in pdf.pages] == [
        (posts[i]["width"], posts[i]["height"]) for i in (13, 10, 12, 11)]

    job = await ready(client, await client.post("/v1/download/booru/danbooru/pool/7",
                                                json={"format": "dataset", "caption": {"separator": " "}}))
    archive = zipfile.ZipFile(io.BytesIO((await client.get(job["download_url"])).content))
    images = {n for n in archive.namelist() if not n.endswith(".txt")}
    assert {n.split(".")[0] for n in images} == {posts[i]["md5"] for i in (13, 10, 12, 11)}
    assert all(f"{n.split('.')[0]}.txt" in archive.namelist() for n in images)


async def test_moebooru_pools_follow_the_sequence_and_skip_deleted_posts(
        client: httpx.AsyncClient, yandere: MoebooruDouble) -> None:
    job = await ready(client, await client.post("/v1/download/booru/yandere/pool/3", json={"format": "zip"}))
    assert [s["post_id"] for s in job["skipped"]] == [12]
    archive = zipfile.ZipFile(io.BytesIO((await client.get(job["download_url"])).content))
    names = sorted(n for n in archive.namelist() if n != "ComicInfo.xml")
    posts = by_id(yandere)
    assert [md5(archive.read(n)) for n in names] == [posts[i]["md5"] for i in (15, 11, 10)]


async def test_pool_look_ups_and_refusals(client: httpx.AsyncClient, danbooru: DanbooruDouble) -> None:
    resp = await client.post("/v1/download/booru/danbooru/pool/4242", json={})
    assert resp.status_code == 404 and "4242" in resp.json()["detail"]
    assert (await client.get("/v1/jobs")).json()["jobs"] == []  # nothing was made
    resp = await client.post("/v1/download/booru/gelbooru/pool/1", json={})
    assert resp.status_code == 422
    assert resp.json()["detail"] == "gelbooru has no pools; pools work on danbooru, yandere and konachan."
    assert (await client.get("/v1/booru/safebooru/pools?q=x")).status_code == 422
    assert (await client.post("/v1/download/booru/danbooru/pool/7", json={"format": "epub"})).status_code == 422
    assert (await client.post("/v1/download/booru/danbooru/pool/7", json={"colour": 1})).status_code == 422
    resp = await client.post("/v1/download/booru/danbooru/pool/7", json={"dest": "library"})
    assert resp.status_code == 422 and "JMBOORU_LIBRARY_DIR" in resp.json()["detail"]
    assert (await client.post("/v1/download/booru/danbooru/pool/0", json={})).status_code in (404, 422)

    found = (await client.get("/v1/booru/danbooru/pools", params={"q": "comic day"})).json()["pools"]
    assert [(p["id"], p["name"], p["post_count"]) for p in found] == [(7, "Miku's Comic Day", 6)]
    assert found[0]["url"] == f"{danbooru.base_url}/pools/7"
    assert (await client.get("/v1/booru/danbooru/pools", params={"q": "nothing"})).json() == {"pools": []}


def test_jmbooru_booru_pool_writes_the_book_and_refuses_unknown_pools(
        tmp_path: Path, danbooru: DanbooruDouble, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    from app.cli import main

    monkeypatch.setenv("JMBOORU_DANBOORU_URL", danbooru.base_url)
    monkeypatch.setenv("JMBOORU_DANBOORU_API_RATE", "1000")
    monkeypatch.setenv("JMBOORU_ENV_FILE", str(tmp_path / "none.env"))
    monkeypatch.chdir(tmp_path)
    assert main(["booru", "danbooru", "--pool", "7", "-o", "books", "-q"]) == 0
    book = tmp_path / "books" / "Miku's Comic Day.cbz"
    names = sorted(n for n in zipfile.ZipFile(book).namelist() if n != "ComicInfo.xml")
    posts = by_id(danbooru)
    assert [md5(zipfile.ZipFile(book).read(n)) for n in names] == [posts[i]["md5"] for i in (13, 10, 12, 11)]
    assert sorted(p.name for p in (tmp_path / "books").iterdir()) == ["Miku's Comic Day.cbz"]  # no scratch left

    assert main(["booru", "danbooru", "--pool", "7", "--format", "pdf", "-q"]) == 0
    assert len(PdfReader(tmp_path / "Miku's Comic Day.pdf").pages) == 4

    assert main(["booru", "danbooru", "--pool", "7", "--format", "dataset", "-o", "set", "-q"]) == 0
    images = sorted(p.name for p in (tmp_path / "set").iterdir() if p.suffix != ".txt")
    assert images == sorted(f"{posts[i]['md5']}.{'jpg' if i == 12 else 'png'}" for i in (13, 10, 12, 11))
    assert all((tmp_path / "set" / name).with_suffix(".txt").is_file() for name in images)

    assert main(["booru", "danbooru", "--pool", "4242", "-q"]) != 0
    assert "4242" in capsys.readouterr().err
    assert main(["booru", "gelbooru", "--pool", "1", "-q"]) != 0
    assert "pools work on danbooru, yandere and konachan" in capsys.readouterr().err
