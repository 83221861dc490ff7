"""The OPDS catalog (api.md Part 7) against the JM double: feeds, search, paging, chapters, streamed
pages compared by pixels with the album download, CBZ acquisition and authentication."""

from __future__ import annotations

import asyncio
import base64
import io
import os
import threading
import time
import zipfile
from collections.abc import AsyncIterator
from pathlib import Path
from xml.etree import ElementTree

import httpx
import pytest
from PIL import Image, ImageChops, ImageStat

from app.jobs.models import JobState
from app.outputs.opds.pages import KEEP_SECONDS, PageCache
from tests.conftest import app_client, make_settings, wait_for
from tests.fakes.jm import FakeAlbum, FakeChapter, JmDouble

ATOM = "{http://www.w3.org/2005/Atom}"
PSE_COUNT = "{http://vaemendis.net/opds-pse/ns}count"
ACQUISITION = "application/atom+xml;profile=opds-catalog;kind=acquisition"
CBZ = "application/vnd.comicbook+zip"

JPEG_ALBUM = "110001"  # plain (unscrambled) JPEG pages
WEBP_ALBUM = "100001"  # plain WebP pages (transcoded when streamed)
SCRAMBLED_ALBUM = "500001"  # WebP pages cut into strips (descrambled when streamed)


def add_test_albums(jm: JmDouble) -> None:
    jm.add_album(FakeAlbum(JPEG_ALBUM, "Jpeg Pages", [FakeChapter(JPEG_ALBUM, "Jpeg Pages", 3, ext="jpg")],
                           authors=["Jo"], tags=["jpeg"], description=""))


@pytest.fixture
async def opds(tmp_path: Path, jm_double: JmDouble) -> AsyncIterator[httpx.AsyncClient]:
    add_test_albums(jm_double)
    async with app_client(make_settings(tmp_path / "data", jm_double, opds_wait_seconds=30)) as client:
        yield client


def parse(resp: httpx.Response) -> ElementTree.Element:
    assert resp.status_code == 200, resp.text
    return ElementTree.fromstring(resp.content)


def entries(feed: ElementTree.Element) -> list[ElementTree.Element]:
    return feed.findall(f"{ATOM}entry")


def link(element: ElementTree.Element, rel: str) -> ElementTree.Element | None:
    return next((li for li in element.findall(f"{ATOM}link") if li.get("rel") == rel), None)


def entry_ids(feed: ElementTree.Element) -> list[str]:
    return [e.findtext(f"{ATOM}id") or "" for e in entries(feed)]


async def test_root_links_exactly_the_catalogs(opds: httpx.AsyncClient) -> None:
    resp = await opds.get("/opds")
    assert resp.headers["content-type"] == "application/atom+xml;profile=opds-catalog;kind=navigation"
    feed = parse(resp)
    hrefs = []
    for entry in entries(feed):
        links = entry.findall(f"{ATOM}link")
        assert [(li.get("rel"), li.get("type")) for li in links] == [("subsection", ACQUISITION)]
        hrefs.append(links[0].get("href"))
    # No JM account configured: no favourites catalog.
    assert hrefs == ["/opds/jm/rank/day", "/opds/jm/rank/week", "/opds/jm/rank/month", "/opds/jm/rank/all",
                     "/opds/archives"]
    assert link(feed, "search") is not None and link(feed, "start") is not None
    assert (await opds.get("/opds/jm/favorites")).status_code == 404


async def test_search_template_holds_only_search_terms(opds: httpx.AsyncClient) -> None:
    resp = await opds.get("/opds/search.xml")
    assert resp.headers["content-type"].startswith("application/opensearchdescription+xml")
    root = ElementTree.fromstring(resp.content)
    assert root.tag == "{http://a9.com/-/spec/opensearch/1.1/}OpenSearchDescription"
    (url,) = root.findall("{http://a9.com/-/spec/opensearch/1.1/}Url")
    assert url.get("type") == ACQUISITION
    assert url.get("template") == "/opds/jm/search?q={searchTerms}"


async def test_search_by_word_and_by_id(opds: httpx.AsyncClient, jm_double: JmDouble) -> None:
    feed = parse(await opds.get("/opds/jm/search", params={"q": "romance"}))
    expected = [aid for aid in jm_double.search_ids("romance")]
    assert entry_ids(feed) == [f"urn:jmbooru:jm:album:{aid}" for aid in expected] and expected
    feed = parse(await opds.get("/opds/jm/search", params={"q": "500001"}))
    assert entry_ids(feed) == ["urn:jmbooru:jm:album:500001"]
    empty = await opds.get("/opds/jm/search", params={"q": " "})
    assert empty.status_code == 422 and "q is empty" in empty.json()["detail"]


async def test_album_entry_carries_covers_authors_tags_summary_cbz_and_stream(opds: httpx.AsyncClient) -> None:
    feed = parse(await opds.get("/opds/jm/search", params={"q": "200001"}))
    (entry,) = entries(feed)
    assert entry.findtext(f"{ATOM}title") == "Two Chapters"
    assert [a.findtext(f"{ATOM}name") for a in entry.findall(f"{ATOM}author")] == ["Carol", "Dave"]
    assert [c.get("term") for c in entry.findall(f"{ATOM}category")] == ["series", "chinese"]
    assert (entry.findtext(f"{ATOM}summary") or "").strip()
    image, thumb = link(entry, "http://opds-spec.org/image"), link(entry, "http://opds-spec.org/image/thumbnail")
    assert image is not None and thumb is not None and image.get("type") == "image/jpeg"
    cover = await opds.get(image.get("href") or "")
    assert cover.status_code == 200 and cover.headers["content-type"] == "image/jpeg"
    acquisition = link(entry, "http://opds-spec.org/acquisition")
    assert acquisition is not None
    assert (acquisition.get("href"), acquisition.get("type")) == ("/opds/jm/album/200001.cbz", CBZ)
    stream = link(entry, "http://vaemendis.net/opds-pse/stream")
    assert stream is not None and stream.get(PSE_COUNT) == "5"
    assert stream.get("href") == "/opds/jm/album/200001/pages/{pageNumber}?maxWidth={maxWidth}"
    sub = link(entry, "subsection")
    assert sub is not None and (sub.get("href"), sub.get("type")) == ("/opds/jm/album/200001", ACQUISITION)


async def test_album_200001_feed_has_its_chapters_with_page_counts(opds: httpx.AsyncClient) -> None:
    feed = parse(await opds.get("/opds/jm/album/200001"))
    album, first, second = entries(feed)
    assert album.findtext(f"{ATOM}id") == "urn:jmbooru:jm:album:200001"
    assert [e.findtext(f"{ATOM}id") for e in (first, second)] == ["urn:jmbooru:jm:photo:200001",
                                                                   "urn:jmbooru:jm:photo:200002"]
    assert "第1話" in (first.findtext(f"{ATOM}title") or "") and "第2話" in (second.findtext(f"{ATOM}title") or "")
    for chapter, pid, count in ((first, "200001", "3"), (second, "200002", "2")):
        stream = link(chapter, "http://vaemendis.net/opds-pse/stream")
        assert stream is not None and stream.get(PSE_COUNT) == count
        assert stream.get("href") == f"/opds/jm/album/200001/chapter/{pid}/pages/{{pageNumber}}?maxWidth={{maxWidth}}"
        cbz = link(chapter, "http://opds-spec.org/acquisition")
        assert cbz is not None and cbz.get("href") == f"/opds/jm/album/200001/chapter/{pid}.cbz"
        assert link(chapter, "http://opds-spec.org/image") is not None
    # A one-chapter album's feed holds only the album entry; an unknown album is a 404.
    assert entry_ids(parse(await opds.get("/opds/jm/album/100001"))) == ["urn:jmbooru:jm:album:100001"]
    assert (await opds.get("/opds/jm/album/999999")).status_code == 404


async def test_feeds_page_with_next_links_until_the_last(opds: httpx.AsyncClient, jm_double: JmDouble) -> None:
    for i in range(45):
        jm_double.add_album(FakeAlbum.single(str(120000 + i), f"Bulk {i}", 1, tags=["bulk"]))
    expected = [f"urn:jmbooru:jm:album:{aid}" for aid in jm_double.search_ids("bulk")]
    assert len(expected) == 45
    seen: list[str] = []
    href: str | None = "/opds/jm/search?q=bulk"
    pages = 0
    while href:
        feed = parse(await opds.get(href))
        seen += entry_ids(feed)
        nxt = link(feed, "next")
        assert nxt is None or nxt.get("type") == ACQUISITION
        href = nxt.get("href") if nxt is not None else None
        pages += 1
    assert seen == expected and pages == 3
    assert (await opds.get("/opds/jm/search", params={"q": "bulk", "page": "0"})).status_code == 422
    assert (await opds.get("/opds/jm/rank/week", params={"page": "x"})).status_code == 422
    assert (await opds.get("/opds/jm/rank/year")).status_code == 404


async def test_rankings_follow_jm_order(opds: httpx.AsyncClient, jm_double: JmDouble) -> None:
    for period, code in (("day", "t"), ("week", "w"), ("month", "m"), ("all", "")):
        feed = parse(await opds.get(f"/opds/jm/rank/{period}"))
        ranked = [aid for aid in jm_double.ranking(code) if not jm_double.albums[aid].login_only]
        assert entry_ids(feed) == [f"urn:jmbooru:jm:album:{aid}" for aid in ranked][:20]


# --- pages ------------------------------------------------------------------------------------

async def download_pages(client: httpx.AsyncClient, album_id: str) -> list[Image.Image]:
    """The album's pages as the album download (zip) writes them, in reading order."""
    started = await client.post(f"/v1/download/album/{album_id}", json={"format": "zip"})
    assert started.status_code == 202, started.text
    job_id = started.json()["job_id"]

    async def ready() -> bool:
        state = (await client.get(f"/v1/jobs/{job_id}")).json()["state"]
        assert state not in ("failed", "cancelled")
        return bool(state == "ready")

    await wait_for(ready, timeout=60)
    archive = zipfile.ZipFile(io.BytesIO((await client.get(f"/v1/jobs/{job_id}/file")).content))
    names = sorted(n for n in archive.namelist() if n != "cover.jpg")
    return [Image.open(io.BytesIO(archive.read(n))).convert("RGB") for n in names]


# The test pictures are full of one-pixel stripes, the worst case for JPEG: a page re-encoded or
# scaled stays within ~7 levels of the original, while another page, or this one with its strips
# out of order, is ~100 levels away.
SAME_PAGE = 10


def coarse(picture: Image.Image) -> Image.Image:
    """A quarter of the size, averaged: scaled copies are compared by their shapes and colours, not
    by how two resamplers alias one-pixel stripes."""
    return picture.convert("RGB").reduce(4)


def difference(a: Image.Image, b: Image.Image) -> float:
    """The largest per-channel mean absolute difference (0-255)."""
    assert a.size == b.size, (a.size, b.size)
    return max(ImageStat.Stat(ImageChops.difference(a.convert("RGB"), b.convert("RGB"))).mean)


@pytest.mark.parametrize("album_id", [JPEG_ALBUM, WEBP_ALBUM, SCRAMBLED_ALBUM])
async def test_streamed_pages_match_the_download_at_full_size_and_max_width(
    opds: httpx.AsyncClient, jm_double: JmDouble, album_id: str
) -> None:
    downloaded = await download_pages(opds, album_id)
    photo_id = jm_double.albums[album_id].chapters[0].photo_id
    for n, page in enumerate(downloaded):
        resp = await opds.get(f"/opds/jm/album/{album_id}/pages/{n}")
        assert resp.status_code == 200, resp.text
        kind = {"image/jpeg": "JPEG", "image/png": "PNG"}[resp.headers["content-type"]]
        streamed = Image.open(io.BytesIO(resp.content))
        assert streamed.format == kind  # Content-Type matches the bytes; WebP is never sent
        assert difference(streamed, page) < SAME_PAGE
        assert difference(streamed, jm_double.expected_image(photo_id, n + 1)) < SAME_PAGE
        if album_id == JPEG_ALBUM:  # unscrambled JPEG passes through unchanged
            assert resp.content == jm_double.served_bytes(photo_id, n + 1)
        scaled = await opds.get(f"/opds/jm/album/{album_id}/pages/{n}", params={"maxWidth": "120"})
        small = Image.open(io.BytesIO(scaled.content))
        assert small.format == {"image/jpeg": "JPEG", "image/png": "PNG"}[scaled.headers["content-type"]]
        assert small.width in (119, 120) and abs(small.height - round(page.height * 120 / page.width)) <= 1
        assert difference(coarse(small), coarse(page.resize(small.size, Image.Resampling.LANCZOS))) < SAME_PAGE
        wide = await opds.get(f"/opds/jm/album/{album_id}/pages/{n}", params={"maxWidth": "5000"})
        assert Image.open(io.BytesIO(wide.content)).size == page.size  # never enlarged
    assert (await opds.get(f"/opds/jm/album/{album_id}/pages/{len(downloaded)}")).status_code == 404


async def test_pages_count_across_chapters_and_a_cached_page_is_not_fetched_again(
    opds: httpx.AsyncClient, jm_double: JmDouble
) -> None:
    jm_double.reset_hits()
    resp = await opds.get("/opds/jm/album/200001/pages/3", params={"maxWidth": ""})
    assert resp.status_code == 200
    # Page 3 (0-based) is chapter 200002's first page; exactly one image request, no album download.
    assert jm_double.hits("/media/photos/") == 1 and jm_double.hits("/media/photos/200002/00001") == 1
    assert difference(Image.open(io.BytesIO(resp.content)), jm_double.expected_image("200002", 1)) < SAME_PAGE
    for _ in range(3):
        again = await opds.get("/opds/jm/album/200001/pages/3")
        assert again.content == resp.content
    await opds.get("/opds/jm/album/200001/pages/3", params={"maxWidth": "100"})  # another width: from disk
    assert jm_double.hits("/media/photos/") == 1
    chapter = await opds.get("/opds/jm/album/200001/chapter/200002/pages/0")
    assert chapter.content == resp.content and jm_double.hits("/media/photos/") == 1
    assert (await opds.get("/opds/jm/album/200001/chapter/200002/pages/2")).status_code == 404
    assert (await opds.get("/opds/jm/album/200001/chapter/999/pages/0")).status_code == 404


@pytest.mark.parametrize("query", ["maxWidth=0", "maxWidth=-3", "maxWidth=abc", "maxWidth=1.5"])
async def test_bad_max_width_is_a_422_sentence(opds: httpx.AsyncClient, query: str) -> None:
    resp = await opds.get(f"/opds/jm/album/100001/pages/0?{query}")
    assert resp.status_code == 422 and "maxWidth" in resp.json()["detail"]


@pytest.mark.parametrize("n", ["-1", "x", "1.0"])
async def test_a_page_number_that_is_not_a_count_from_zero_is_refused(opds: httpx.AsyncClient, n: str) -> None:
    resp = await opds.get(f"/opds/jm/album/100001/pages/{n}")
    assert resp.status_code in (404, 422) and resp.json()["detail"]


# --- CBZ acquisition -----------------------------------------------------------------------------

def assert_cbz(resp: httpx.Response) -> zipfile.ZipFile:
    assert resp.status_code == 200, resp.text
    assert resp.headers["content-type"] == CBZ
    assert ".cbz" in resp.headers["content-disposition"]
    archive = zipfile.ZipFile(io.BytesIO(resp.content))
    assert "ComicInfo.xml" in archive.namelist()
    return archive


async def test_cbz_acquisition_answers_with_the_archive_and_archives_lists_it(opds: httpx.AsyncClient) -> None:
    archive = assert_cbz(await opds.get("/opds/jm/album/200001.cbz"))
    assert len([n for n in archive.namelist() if n != "ComicInfo.xml"]) == 5
    chapter = assert_cbz(await opds.get("/opds/jm/album/200001/chapter/200002.cbz"))
    assert len([n for n in chapter.namelist() if n != "ComicInfo.xml"]) == 2
    feed = parse(await opds.get("/opds/archives"))
    assert len(entries(feed)) == 2
    newest = entries(feed)[0]
    acquisition = link(newest, "http://opds-spec.org/acquisition")
    assert acquisition is not None and acquisition.get("type") == CBZ
    assert (newest.findtext(f"{ATOM}id") or "").startswith("urn:jmbooru:job:")
    job_id = (acquisition.get("href") or "").rsplit("/", 1)[-1]
    same = await opds.get(acquisition.get("href") or "")
    assert same.content == (await opds.get(f"/v1/jobs/{job_id}/file")).content
    assert (await opds.get("/opds/archives/nosuchjob")).status_code == 404
    assert (await opds.get("/opds/jm/album/200001/chapter/999.cbz")).status_code == 404
    assert (await opds.get("/opds/jm/album/999999.cbz")).status_code == 404


async def test_cbz_acquisition_says_503_until_ready_and_joins_the_same_job(
    tmp_path: Path, jm_double: JmDouble
) -> None:
    jm_double.set_latency(0.3, "/media/photos/")
    settings = make_settings(tmp_path / "data", jm_double, opds_wait_seconds=0)
    async with app_client(settings) as client:
        first = await client.get("/opds/jm/album/100001.cbz")
        assert first.status_code == 503 and int(first.headers["retry-after"]) >= 1
        assert "CBZ" in first.json()["detail"]
        answers: list[httpx.Response] = []

        async def archive_ready() -> bool:  # asking again joins the job, until it is ready
            answers.append(await client.get("/opds/jm/album/100001.cbz"))
            assert answers[-1].status_code in (200, 503)
            return answers[-1].status_code == 200

        await wait_for(archive_ready, timeout=60, interval=0.2)
        resp = answers[-1]
        assert_cbz(resp)
        jobs = client.app.state.jobs  # type: ignore[attr-defined]
        album_jobs = await jobs.jobs_in(list(JobState))
        assert [j.key for j in album_jobs] == ["album:100001:cbz"]


async def test_cbz_type_setting_switches_links_and_answers(tmp_path: Path, jm_double: JmDouble) -> None:
    settings = make_settings(tmp_path / "data", jm_double, opds_cbz_type="application/x-cbz")
    async with app_client(settings) as client:
        feed = parse(await client.get("/opds/jm/search", params={"q": "100001"}))
        types = [li.get("type") for e in entries(feed) for li in e.findall(f"{ATOM}link")
                 if li.get("rel") == "http://opds-spec.org/acquisition"]
        assert types == ["application/x-cbz"]
        resp = await client.get("/opds/jm/album/100001.cbz")
        assert resp.status_code == 200 and resp.headers["content-type"] == "application/x-cbz"


# --- authentication ----------------------------------------------------------------------------------

def basic(user: str, password: str) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()}


async def test_key_as_basic_password_header_or_query(tmp_path: Path, jm_double: JmDouble) -> None:
    settings = make_settings(tmp_path / "data", jm_double, api_key="s3cret")
    async with app_client(settings) as client:
        for headers, params in (({}, {}), (basic("reader", "wrong"), {}), ({"X-API-Key": "nope"}, {})):
            resp = await client.get("/opds", headers=headers, params=params)
            assert resp.status_code == 401
            assert resp.headers["www-authenticate"] == 'Basic realm="jmbooru"'
            assert "Basic" in resp.json()["detail"]
        assert (await client.get("/opds/jm/album/100001/pages/0")).status_code == 401
        for headers, params in ((basic("anyone", "s3cret"), {}), (basic("", "s3cret"), {}),
                                ({"X-API-Key": "s3cret"}, {}), ({}, {"api_key": "s3cret"})):
            assert (await client.get("/opds", headers=headers, params=params)).status_code == 200
        page = await client.get("/opds/jm/album/100001/pages/0", params={"maxWidth": "100"},
                                headers=basic("koreader", "s3cret"))
        assert page.status_code == 200 and page.headers["content-type"] in ("image/jpeg", "image/png")


async def test_without_a_key_the_catalog_is_open_and_ignores_credentials(opds: httpx.AsyncClient) -> None:
    assert (await opds.get("/opds", headers=basic("x", "y"))).status_code == 200



async def test_a_page_asked_for_twice_at_once_is_fetched_once(opds: httpx.AsyncClient, jm_double: JmDouble) -> None:
    jm_double.set_latency(0.3, "/media/photos/")
    jm_double.reset_hits()
    answers = await asyncio.gather(*(opds.get("/opds/jm/album/500001/pages/1", params={"maxWidth": w})
                                     for w in ("100", "100", "", "150")))
    assert [a.status_code for a in answers] == [200] * 4 and answers[0].content == answers[1].content
    assert jm_double.hits("/media/photos/") == 1


async def test_an_uncached_page_is_answered_before_it_is_written_and_cached_whole_after(
    tmp_path: Path, jm_double: JmDouble, monkeypatch: pytest.MonkeyPatch
) -> None:
    release = threading.Event()
    saving = PageCache._save

    def held_save(self: PageCache, *args: object) -> None:  # the disk is slow until the test says so
        assert release.wait(30)
        saving(self, *args)  # type: ignore[arg-type]

    monkeypatch.setattr(PageCache, "_save", held_save)
    async with app_client(make_settings(tmp_path / "data", jm_double)) as client:
        jm_double.reset_hits()
        url, width = f"/opds/jm/album/{SCRAMBLED_ALBUM}/pages/1", {"maxWidth": "120"}
        first = await client.get(url, params=width)  # answered while nothing could be written yet
        assert first.status_code == 200 and first.headers["content-type"] == "image/jpeg"
        folder = tmp_path / "data" / "opds-pages" / jm_double.albums[SCRAMBLED_ALBUM].chapters[0].photo_id
        assert not folder.exists() or not [p for p in folder.iterdir() if not p.name.startswith(".")]
        # Meanwhile the page (and another width of it) come from memory: no second image request.
        assert (await client.get(url, params=width)).content == first.content
        assert (await client.get(url, params={"maxWidth": "100"})).status_code == 200
        assert jm_double.hits("/media/photos/") == 1
        release.set()
        await wait_for(lambda: (folder / "1-w120.jpg").is_file() and (folder / "1-w100.jpg").is_file()
                       and len(list(folder.glob("1.s*.src"))) == 1)
        assert (folder / "1-w120.jpg").read_bytes() == first.content  # whole, never a part
        assert not list(folder.glob(".*"))  # no part left beside them
        assert (await client.get(url, params=width)).content == first.content
        assert (await client.get(url, params={"maxWidth": "90"})).status_code == 200  # from the kept source
        assert jm_double.hits("/media/photos/") == 1


async def test_pages_ask_jm_for_nothing_but_the_image_once_the_album_is_known(
    tmp_path: Path, jm_double: JmDouble
) -> None:
    # The API cache keeps nothing here: still, paging costs one image request a page and no details.
    async with app_client(make_settings(tmp_path / "data", jm_double, cache_ttl_seconds=0)) as client:
        assert (await client.get("/opds/jm/album/200001")).status_code == 200  # album and chapter details
        jm_double.reset_hits()
        for n in range(5):
            assert (await client.get(f"/opds/jm/album/200001/pages/{n}", params={"maxWidth": "100"})).status_code == 200
        # The chapter's page 1 is the album's page 4, full size this time: made from the kept source.
        assert (await client.get("/opds/jm/album/200001/chapter/200002/pages/1")).status_code == 200
        assert jm_double.hits("/album") == 0 and jm_double.hits("/chapter") == 0
        assert jm_double.hits("/media/photos/") == 5
        # A page past the known end: JM is asked again (here its details are never fresh), and a
        # chapter published since is found, by album page number and by chapter.
        jm_double.add_chapter("200001", FakeChapter("200009", "第3話", 2))
        resp = await client.get("/opds/jm/album/200001/pages/6")
        assert resp.status_code == 200 and jm_double.hits("/album") == 1
        assert difference(Image.open(io.BytesIO(resp.content)), jm_double.expected_image("200009", 2)) < SAME_PAGE
        assert (await client.get("/opds/jm/album/200001/chapter/200009/pages/0")).status_code == 200
        assert (await client.get("/opds/jm/album/200001/pages/7")).status_code == 404


def test_chapters_nobody_read_for_a_day_leave_the_page_cache(tmp_path: Path) -> None:
    cache = PageCache(tmp_path, pool=None)  # type: ignore[arg-type]  # prune runs no pool work
    for name in ("old", "fresh"):
        (tmp_path / name).mkdir()
        (tmp_path / name / "0.jpg").write_bytes(b"x")
    day_old = time.time() - KEEP_SECONDS - 60
    os.utime(tmp_path / "old" / "0.jpg", (day_old, day_old))
    assert cache.prune() == 1
    assert not (tmp_path / "old").exists() and (tmp_path / "fresh" / "0.jpg").exists()
