"""Library mode (library.md): albums and pools filed as CBZ books into a Komga/Kavita folder tree,
never duplicated, never swept, with one scan request to each configured reader server."""

from __future__ import annotations

import asyncio
import io
import zipfile
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import app_client, make_settings, wait_for
from tests.fakes.danbooru import DanbooruDouble
from tests.fakes.jm import FakeAlbum, FakeChapter, JmDouble
from tests.fakes.readers import KavitaFake, KomgaFake
from tests.test_album_formats import assert_valid_comic_info, read_with_comictagger
from tests.test_pools import short_pool_double

EVIL = '../../Evil: <Series>?|*.'


@pytest.fixture
def readers() -> Iterator[tuple[KomgaFake, KavitaFake]]:
    with KomgaFake() as komga, KavitaFake() as kavita:
        yield komga, kavita


@pytest.fixture
def danbooru() -> Iterator[DanbooruDouble]:
    with short_pool_double() as double:
        yield double


@pytest.fixture
async def client(tmp_path: Path, jm_double: JmDouble, danbooru: DanbooruDouble,
                 readers: tuple[KomgaFake, KavitaFake]) -> AsyncIterator[httpx.AsyncClient]:
    komga, kavita = readers
    jm_double.add_album(FakeAlbum("100301", EVIL, [FakeChapter("100301", "Part/1", 2, 1),
                                                    FakeChapter("100302", EVIL, 1, 2)]))
    settings = make_settings(tmp_path / "data", jm_double, library_dir=tmp_path / "library", file_ttl_seconds=1,
                             danbooru_url=danbooru.base_url, danbooru_api_rate=1000,
                             komga_url=komga.url, komga_api_key=komga.api_key, komga_library_id=komga.library_id,
                             kavita_url=kavita.url, kavita_api_key=kavita.api_key, kavita_library_id=kavita.library_id)
    async with app_client(settings) as c:
        yield c


async def filed(client: httpx.AsyncClient, path: str, body: dict[str, Any]) -> dict[str, Any]:
    resp = await client.post(path, json=body)
    assert resp.status_code == 202, resp.text
    job_id = resp.json()["job_id"]

    async def done() -> dict[str, Any] | None:
        job = (await client.get(f"/v1/jobs/{job_id}")).json()
        return job if job["state"] in ("ready", "failed", "cancelled") else None

    job = await wait_for(done, timeout=30)
    assert job["state"] == "ready", job
    return job


def tree(root: Path) -> list[str]:
    return sorted(p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file())


async def test_a_two_chapter_album_becomes_one_book_per_chapter_and_repeats_rewrite_in_place(
        client: httpx.AsyncClient, tmp_path: Path, jm_double: JmDouble,
        readers: tuple[KomgaFake, KavitaFake]) -> None:
    root = tmp_path / "library"
    job = await filed(client, "/v1/download/album/200001", {"dest": "library"})
    expected = ["JM/Two Chapters/Two Chapters - c001 第1話.cbz", "JM/Two Chapters/Two Chapters - c002 第2話.cbz"]
    assert job["library_paths"] == expected and job["file_name"] == "" and job["download_url"] == ""
    assert tree(root) == expected
    resp = await client.get(f"/v1/jobs/{job['job_id']}/file")
    assert resp.status_code == 409 and "library" in resp.json()["detail"]
    assert not list((tmp_path / "data").rglob("*.cbz"))  # nothing of it in the data folder

    for number, (path, pages) in enumerate(zip(expected, (3, 2), strict=True), start=1):
        book = zipfile.ZipFile(root / path)
        assert len([n for n in book.namelist() if n != "ComicInfo.xml"]) == pages
        info = assert_valid_comic_info(book.read("ComicInfo.xml"))
        assert (info.findtext("Series"), info.findtext("Number"), info.findtext("Count")) == ("Two Chapters",
                                                                                             str(number), "2")
        _, md = read_with_comictagger(root / path)
        assert md.series == "Two Chapters" and md.issue == str(number) and md.issue_count == 2

    komga, kavita = readers
    await wait_for(lambda: len(komga.scans()) == 1 and len(kavita.scans()) == 1, timeout=10)
    again = await filed(client, "/v1/download/album/200001", {"dest": "library"})
    assert again["job_id"] != job["job_id"]  # an ended library job is not joined: it files again
    assert tree(root) == expected  # same files, no second copy
    await wait_for(lambda: len(komga.scans()) == 2 and len(kavita.scans()) == 2, timeout=10)


async def test_hostile_titles_stay_inside_the_library(client: httpx.AsyncClient, tmp_path: Path) -> None:
    job = await filed(client, "/v1/download/album/100301", {"dest": "library"})
    assert job["library_paths"] == ["JM/_.._Evil_ _Series____/_.._Evil_ _Series____ - c001 Part_1.cbz",
                                    "JM/_.._Evil_ _Series____/_.._Evil_ _Series____ - c002.cbz"]
    assert tree(tmp_path / "library") == job["library_paths"]
    info = zipfile.ZipFile(tmp_path / "library" / job["library_paths"][0]).read("ComicInfo.xml")
    assert assert_valid_comic_info(info).findtext("Series") == EVIL  # verbatim inside the book


async def test_a_pool_in_the_library_survives_the_archive_sweep(client: httpx.AsyncClient, tmp_path: Path) -> None:
    job = await filed(client, "/v1/download/booru/danbooru/pool/7", {"dest": "library"})
    assert job["library_paths"] == ["Danbooru Pools/Miku's Comic Day/Miku's Comic Day.cbz"]
    book = tmp_path / "library" / job["library_paths"][0]
    before = book.read_bytes()
    info = assert_valid_comic_info(zipfile.ZipFile(io.BytesIO(before)).read("ComicInfo.xml"))
    assert info.findtext("Series") == "Miku's Comic Day" and info.findtext("Number") == "1"
    service = client.app.state.jobs  # type: ignore[attr-defined]
    await asyncio.sleep(1.5)  # time itself: past JMBOORU_FILE_TTL_SECONDS=1, when an archive would expire
    await service.sweep()
    assert book.read_bytes() == before
    assert (await client.get(f"/v1/jobs/{job['job_id']}")).json()["state"] == "ready"


async def test_library_requests_refuse_other_formats(client: httpx.AsyncClient) -> None:
    resp = await client.post("/v1/download/album/200001", json={"dest": "library", "format": "pdf"})
    assert resp.status_code == 422 and "CBZ" in resp.json()["detail"]
    resp = await client.post("/v1/download/booru/danbooru/pool/7", json={"dest": "library", "format": "zip"})
    assert resp.status_code == 422
