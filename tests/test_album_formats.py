"""Album archives in every format and layout, read back by independent readers: zipfile, ComicTagger's
ComicInfo plugin (comicinfoxml), pypdf and pikepdf. Pages are compared by pixels with the pictures
the JM double serves (descrambled pages are re-encoded by jmcomic, lossy: compared with a tolerance).
"""

from __future__ import annotations

import io
import xml.etree.ElementTree as ET
import zipfile
from pathlib import Path
from typing import Any

import httpx
import pikepdf
import pytest
from PIL import Image, ImageChops, ImageStat
from pypdf import PdfReader

from tests.conftest import wait_for
from tests.fakes.jm import FakeAlbum, FakeChapter, JmDouble

ONE_CHAPTER = ("500001", [("500001", 4)])  # scrambled pages, one chapter
TWO_CHAPTERS = ("600001", [("600001", 3), ("600002", 4)])  # scrambled, "Part 1" and "Part 2"
MEDIA_TYPES = {"zip": "application/zip", "cbz": "application/vnd.comicbook+zip", "pdf": "application/pdf"}


async def download(client: httpx.AsyncClient, album_id: str, **body: Any) -> tuple[dict[str, Any], httpx.Response]:
    """Start a job, wait until it is ready, fetch its archive; the job and the file response."""
    resp = await client.post(f"/v1/download/album/{album_id}", json=body or None)
    assert resp.status_code == 202, resp.text
    job_id = resp.json()["job_id"]

    async def finished() -> dict[str, Any] | None:
        job = (await client.get(f"/v1/jobs/{job_id}")).json()
        return job if job["state"] in ("ready", "failed", "cancelled") else None

    job = await wait_for(finished, timeout=30)
    assert job["state"] == "ready", job
    archive = await client.get(job["download_url"])
    assert archive.status_code == 200
    return job, archive


def assert_same_picture(got: Image.Image, expected: Image.Image, what: str) -> None:
    got = got.convert("RGB")
    assert got.size == expected.size, what
    assert max(ImageStat.Stat(ImageChops.difference(got, expected)).mean) < 10, what


def expected_pages(jm: JmDouble, chapters: list[tuple[str, int]]) -> list[Image.Image]:
    return [jm.expected_image(pid, index) for pid, count in chapters for index in range(1, count + 1)]


def zip_pages(data: bytes) -> list[tuple[str, Image.Image]]:
    archive = zipfile.ZipFile(io.BytesIO(data))
    names = [n for n in archive.namelist() if n not in ("cover.jpg", "ComicInfo.xml")]
    return [(n, Image.open(io.BytesIO(archive.read(n)))) for n in names]


def pdf_pages(data: bytes) -> list[Image.Image]:
    reader = PdfReader(io.BytesIO(data))
    pictures = []
    for page in reader.pages:
        images = page.images
        assert len(images) == 1
        pictures.append(images[0].image)
    return pictures


@pytest.mark.parametrize(("album_id", "chapters"), [ONE_CHAPTER, TWO_CHAPTERS], ids=["one-chapter", "two-chapters"])
@pytest.mark.parametrize(("fmt", "layout"), [("zip", "flat"), ("zip", "chapters"), ("cbz", "flat"), ("pdf", "flat")])
async def test_every_format_holds_every_page_in_reading_order(
    client: httpx.AsyncClient, jm_double: JmDouble, album_id: str, chapters: list[tuple[str, int]],
    fmt: str, layout: str,
) -> None:
    job, archive = await download(client, album_id, format=fmt, layout=layout)
    extension = "." + fmt
    assert archive.headers["content-type"] == MEDIA_TYPES[fmt]
    assert job["file_name"].endswith(extension)
    assert f"{extension}\"" in archive.headers["content-disposition"]
    expected = expected_pages(jm_double, chapters)
    if fmt == "pdf":
        pages = pdf_pages(archive.content)
        assert len(pages) == len(expected)
        for number, (got, want) in enumerate(zip(pages, expected, strict=True), 1):
            assert_same_picture(got, want, f"page {number}")
        return
    named = zip_pages(archive.content)
    names = [name for name, _ in named]
    if layout == "chapters":
        folders = [name.split("/")[0] for name in names]
        assert len(set(folders)) == len(chapters) and folders == sorted(folders)
        assert names == sorted(names)
    else:
        assert names == [f"{n:05d}.webp" for n in range(1, len(expected) + 1)]
    for (name, got), want in zip(named, expected, strict=True):
        assert_same_picture(got, want, name)
    members = zipfile.ZipFile(io.BytesIO(archive.content)).namelist()
    assert ("cover.jpg" in members) == (fmt == "zip")  # a comic reader would show it as a last page
    assert ("ComicInfo.xml" in members) == (fmt == "cbz")


# --- ComicInfo.xml -------------------------------------------------------------------------

# The rules of the anansi-project ComicInfo v2.1 draft schema: the order of ComicInfo's
# xs:sequence, the elements typed xs:int and enumerations, and ComicPageInfo's attributes.
SEQUENCE = [
    "Title", "Series", "Number", "Count", "Volume", "AlternateSeries", "AlternateNumber", "AlternateCount",
    "Summary", "Notes", "Year", "Month", "Day", "Writer", "Penciller", "Inker", "Colorist", "Letterer",
    "CoverArtist", "Editor", "Translator", "Publisher", "Imprint", "Genre", "Tags", "Web", "PageCount",
    "LanguageISO", "Format", "BlackAndWhite", "Manga", "Characters", "Teams", "Locations", "ScanInformation",
    "StoryArc", "StoryArcNumber", "SeriesGroup", "AgeRating", "Pages", "CommunityRating",
    "MainCharacterOrTeam", "Review", "GTIN",
]
INT_ELEMENTS = {"Count", "Volume", "AlternateCount", "Year", "Month", "Day", "PageCount"}
PAGE_ATTRIBUTES = {"Image": int, "Type": str, "DoublePage": bool, "ImageSize": int, "Key": str, "Bookmark": str,
                   "ImageWidth": int, "ImageHeight": int}
PAGE_TYPES = {"FrontCover", "InnerCover", "Roundup", "Story", "Advertisement", "Editorial", "Letters", "Preview",
              "BackCover", "Other", "Deleted"}


def assert_valid_comic_info(xml: bytes) -> ET.Element:
    root = ET.fromstring(xml)
    assert root.tag == "ComicInfo" and not root.attrib
    names = [child.tag for child in root]
    assert all(name in SEQUENCE for name in names), names
    assert [SEQUENCE.index(n) for n in names] == sorted(SEQUENCE.index(n) for n in names), "out of sequence"
    assert len(set(names)) == len(names), "an element repeated"
    for child in root:
        if child.tag in INT_ELEMENTS:
            int(child.text or "")
    pages = root.find("Pages")
    assert pages is not None
    for page in pages:
        assert page.tag == "Page" and "Image" in page.attrib
        for name, value in page.attrib.items():
            kind = PAGE_ATTRIBUTES[name]  # KeyError: an attribute outside the schema
            if kind is int:
                int(value)
            elif kind is bool:
                assert value in ("true", "false", "1", "0")
        assert set(page.get("Type", "Story").split()) <= PAGE_TYPES
    return root


def read_with_comictagger(path: Path) -> Any:
    """ComicTagger opens the file and reads its ComicInfo with the comicinfoxml plugin."""
    from comicapi import comicarchive

    comicarchive.load_tag_plugins()
    assert "cix" in comicarchive.tags and type(comicarchive.tags["cix"]).__module__ == "comicinfoxml"
    archive = comicarchive.ComicArchive(path)
    assert archive.has_tags("cix")
    return archive, archive.read_tags("cix")


@pytest.mark.parametrize(("album_id", "chapters"), [ONE_CHAPTER, TWO_CHAPTERS], ids=["one-chapter", "two-chapters"])
async def test_cbz_comic_info_is_read_by_comictagger(
    client: httpx.AsyncClient, jm_double: JmDouble, tmp_path: Path, album_id: str, chapters: list[tuple[str, int]],
) -> None:
    _, archive = await download(client, album_id, format="cbz")
    root = assert_valid_comic_info(zipfile.ZipFile(io.BytesIO(archive.content)).read("ComicInfo.xml"))
    album = jm_double.albums[album_id]
    path = tmp_path / "album.cbz"
    path.write_bytes(archive.content)

    cbz, md = read_with_comictagger(path)
    total = sum(count for _, count in chapters)
    assert cbz.get_number_of_pages() == total
    assert md.title == md.series == album.name
    assert [credit.person for credit in md.credits if "Writer" in credit.role] == album.authors
    assert md.tags == set(album.tags)
    assert md.page_count == total and len(md.pages) == total
    assert [page.display_index for page in md.pages] == list(range(total))  # 0-based Image indexes
    assert md.pages[0].type == "FrontCover"
    assert all(page.type in ("", "Story") for page in md.pages[1:])
    starts = {}
    first = 0
    for (_pid, count), chapter in zip(chapters, album.chapters, strict=True):
        starts[first] = chapter.title
        first += count
    bookmarks = {page.display_index: page.bookmark for page in md.pages if page.bookmark}
    assert bookmarks == (starts if len(chapters) > 1 else {})
    widths = {p.get("ImageWidth") for p in root.iter("Page")}
    assert widths == {str(jm_double.expected_image(album_id, 1).size[0])}


# --- PDF -----------------------------------------------------------------------------------


@pytest.mark.parametrize(("album_id", "chapters"), [ONE_CHAPTER, TWO_CHAPTERS], ids=["one-chapter", "two-chapters"])
async def test_pdf_pages_are_the_size_of_their_images_with_an_outline_per_chapter(
    client: httpx.AsyncClient, jm_double: JmDouble, album_id: str, chapters: list[tuple[str, int]],
) -> None:
    _, archive = await download(client, album_id, format="pdf")
    reader = PdfReader(io.BytesIO(archive.content))
    album = jm_double.albums[album_id]
    assert len(reader.pages) == sum(count for _, count in chapters)
    for page, picture in zip(reader.pages, expected_pages(jm_double, chapters), strict=True):
        assert (float(page.mediabox.width), float(page.mediabox.height)) == picture.size
        assert page.images[0].image.size == picture.size
    outline = [(item.title, reader.get_destination_page_number(item)) for item in reader.outline]
    if len(chapters) == 1:
        assert outline == []
    else:
        assert outline == [(album.chapters[0].title, 0), (album.chapters[1].title, chapters[0][1])]
    assert reader.metadata is not None and reader.metadata.title == album.name
    assert reader.metadata.author == ", ".join(album.authors)


async def test_pdf_embeds_jpeg_and_png_pages_without_re_encoding(
    client: httpx.AsyncClient, jm_double: JmDouble,
) -> None:
    # Older JM albums have JPEG and PNG pages; plain chapters (ids below 220980) are saved byte for byte.
    jm_double.add_album(FakeAlbum("190700", "Old Formats", [FakeChapter("190700", "JPEG pages", 2, 1, ext="jpg"),
                                                            FakeChapter("190701", "PNG pages", 2, 2, ext="png")]))
    _, archive = await download(client, "190700", format="pdf")
    with pikepdf.open(io.BytesIO(archive.content)) as pdf:
        raws = []
        for page in pdf.pages:
            (image,) = page.get_images().values()
            raws.append((str(image.Filter), image.read_raw_bytes()))
    assert [f for f, _ in raws] == ["/DCTDecode", "/DCTDecode", "/FlateDecode", "/FlateDecode"]
    assert raws[0][1] == jm_double.served_bytes("190700", 1)  # the JPEG file itself
    assert raws[1][1] == jm_double.served_bytes("190700", 2)
    for index, (_, raw) in enumerate(raws[2:], start=1):
        assert raw == png_idat(jm_double.served_bytes("190701", index))  # the PNG's compressed pixels as they were


def png_idat(data: bytes) -> bytes:
    """The concatenated IDAT payload of a PNG (its zlib stream)."""
    out, pos = b"", 8
    while pos < len(data):
        length = int.from_bytes(data[pos:pos + 4], "big")
        if data[pos + 4:pos + 8] == b"IDAT":
            out += data[pos + 8:pos + 8 + length]
        pos += 12 + length
    return out


# --- choosing chapters, jobs, refusals -----------------------------------------------------


async def test_a_chapter_subset_holds_only_those_chapters(client: httpx.AsyncClient, jm_double: JmDouble) -> None:
    job, archive = await download(client, "600001", chapters=["600002"])
    assert job["done"] == job["total"] == 4
    named = zip_pages(archive.content)
    assert [name for name, _ in named] == [f"{n:05d}.webp" for n in range(1, 5)]
    for (name, got), index in zip(named, range(1, 5), strict=True):
        assert_same_picture(got, jm_double.expected_image("600002", index), name)
    assert jm_double.hits("/media/photos/600001/") == 0
    assert "(ch 600002)" in archive.headers["content-disposition"]


async def test_formats_and_chapter_choices_are_distinct_jobs(client: httpx.AsyncClient) -> None:
    zipped, _ = await download(client, "200001")
    pdf, _ = await download(client, "200001", format="pdf")
    subset, _ = await download(client, "200001", chapters=["200002"])
    assert len({zipped["job_id"], pdf["job_id"], subset["job_id"]}) == 3
    assert len({zipped["file_name"], pdf["file_name"], subset["file_name"]}) == 3
    again = await client.post("/v1/download/album/200001", json={"format": "pdf", "client_id": "other"})
    assert again.json()["job_id"] == pdf["job_id"] and again.json()["joined"] is True
    # The same chapters named differently ("JM" prefix, repeats, order) are the same download.
    same = await client.post("/v1/download/album/200001", json={"chapters": ["jm200002", 200002]})
    assert same.json()["job_id"] == subset["job_id"]


@pytest.mark.parametrize(("body", "words"), [
    ({"format": "epub"}, ["format", "'zip'", "'cbz'", "'pdf'"]),
    ({"format": "cbz", "layout": "chapters"}, ["layout 'chapters'", "only a zip"]),
    ({"format": "pdf", "layout": "chapters"}, ["layout 'chapters'", "only a zip"]),
    ({"layout": "folders"}, ["layout", "'flat'", "'chapters'"]),
    ({"chapters": []}, ["chapters", "at least 1 item"]),
    ({"chapters": ["first"]}, ["chapters", "pattern"]),
    ({"colour": "red"}, ["colour"]),
])
async def test_bad_album_options_are_422_with_a_sentence(
    client: httpx.AsyncClient, jm_double: JmDouble, body: dict[str, Any], words: list[str],
) -> None:
    resp = await client.post("/v1/download/album/200001", json=body)
    assert resp.status_code == 422
    detail = resp.json()["detail"]
    assert all(word in detail for word in words), detail
    assert (await client.get("/v1/jobs/none")).status_code == 404
    assert jm_double.hits("/media/photos") == 0


async def test_unknown_chapter_is_404_naming_the_albums_chapters(client: httpx.AsyncClient) -> None:
    resp = await client.post("/v1/download/album/200001", json={"chapters": ["200002", "999999"]})
    assert resp.status_code == 404
    detail = resp.json()["detail"]
    assert "no chapter 999999" in detail and "200001 (第1話)" in detail and "200002 (第2話)" in detail


async def test_unknown_chapter_in_a_queued_job_fails_it_with_that_sentence(client: httpx.AsyncClient) -> None:
    from app.jobs.kinds.album import AlbumSpec

    jobs = client.app.state.jobs  # type: ignore[attr-defined]
    job, _ = await jobs.submit(AlbumSpec(album_id="200001", chapters=("999999",)), None)

    async def final() -> dict[str, Any] | None:
        body = (await client.get(f"/v1/jobs/{job.job_id}")).json()
        return body if body["state"] in ("failed", "ready") else None

    body = await wait_for(final)
    assert body["state"] == "failed" and "no chapter 999999" in body["error"]


def test_sweep_reads_every_format_in_archive_names(tmp_path: Path) -> None:
    from app.storage import Storage

    storage = Storage(tmp_path)
    storage.prepare()
    owned = [storage.archive_root / n for n in ("jm-1-activejob1.pdf.part", "jm-1-activejob1.cbz")]
    orphans = [storage.archive_root / n for n in ("jm-2-orphanjob1.pdf", "jm-2-orphanjob1.cbz.part",
                                                  "jm-2-chapters-c1a2b3c4-orphanjob2.zip")]
    kept = storage.archive_root / "jm-3-readyjob01.pdf"
    for path in [*owned, *orphans, kept]:
        path.write_bytes(b"x")
    storage.remove_leftovers({"activejob1xyz"}, {kept.name})
    assert all(p.exists() for p in owned) and kept.exists()
    assert not any(p.exists() for p in orphans)


def test_pixel_budget_bounds_pictures_in_memory_across_threads() -> None:
    import threading
    import time

    from app.sources.jm_pages import PixelBudget

    budget = PixelBudget(100)
    inside: list[int] = []
    lock = threading.Lock()

    def descramble(size: int) -> None:
        with budget.hold(size):
            with lock:
                inside.append(size)
            time.sleep(0.02)  # time itself: the work of a page, holding its pixels while others wait

    threads = [threading.Thread(target=descramble, args=(40,)) for _ in range(6)]
    threads.append(threading.Thread(target=descramble, args=(500,)))  # larger than the budget: passes alone
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=10)
    assert sorted(inside) == [40] * 6 + [500]
    assert budget.peak == 100  # two 40s at once at most, and the big one alone (capped at the limit)


async def test_cancelling_a_pdf_build_stops_it_and_leaves_no_partial_file(tmp_path: Path) -> None:
    import asyncio

    from app.archives import PDF, ArchiveContent, build_archive
    from app.blocking import BlockingPool
    from tests.fakes.images import encode, make_picture

    pages = []
    for i in range(300):
        path = tmp_path / "pages" / f"{i:05d}.webp"
        path.parent.mkdir(exist_ok=True)
        path.write_bytes(encode(make_picture(f"cancel {i % 3}"), "webp"))
        pages.append((path.name, path))
    dest, scratch = tmp_path / "out" / "album.pdf", tmp_path / "scratch"
    dest.parent.mkdir()
    pool = BlockingPool(1, "archive")
    try:
        build = asyncio.create_task(build_archive(pool, PDF, ArchiveContent(pages), dest, scratch))
        await wait_for(lambda: len(list(scratch.glob("*/*.pdf"))) >= 3)  # converting pages now
        build.cancel()
        with pytest.raises(asyncio.CancelledError):
            await build
        assert not dest.exists() and not list(dest.parent.iterdir())  # a build run to its end would rename it
        assert not list(scratch.iterdir())  # its one-page PDFs are gone too
    finally:
        pool.shutdown(wait=True)


async def test_an_archive_is_built_into_a_folder_that_is_not_there_yet(tmp_path: Path) -> None:
    """The builder makes the archive's folder itself, in its own thread (the archive folder removed
    while the server runs, or an upload's scratch folder): no separate hop before the build."""
    from app.archives import ZIP, ArchiveContent, build_archive
    from app.blocking import BlockingPool

    page = tmp_path / "00001.webp"
    page.write_bytes(b"RIFF-not-really-a-page")
    dest = tmp_path / "gone" / "deeper" / "album.zip"
    pool = BlockingPool(1, "archive")
    try:
        size = await build_archive(pool, ZIP, ArchiveContent([("00001.webp", page)]), dest, tmp_path / "scratch")
    finally:
        pool.shutdown(wait=True)
    assert size == dest.stat().st_size
    assert zipfile.ZipFile(dest).read("00001.webp") == page.read_bytes()


def test_a_pdf_build_gives_back_the_pictures_pillow_kept_before_the_join(tmp_path: Path) -> None:
    """The server lets Pillow keep a few freed pictures (OPDS pages); a PDF build's conversions fill
    that cache, and the qpdf child's memory would come on top of it, so the build empties it before
    the join (a 5 MB-page album: ~28 MB)."""
    from app.archives.base import ArchiveContent, Book
    from app.archives.pdf import build_pdf, embeddable
    from app.outputs.opds.pages import keep_freed_pictures
    from tests.fakes.images import encode, make_picture

    pages = []
    for i in range(3):
        path = tmp_path / f"{i:03d}.webp"
        path.write_bytes(encode(make_picture(f"kept {i}", size=(900, 1300)), "webp"))
        pages.append((path.name, path))
    before = Image.core.get_blocks_max()
    try:
        Image.core.clear_cache()
        keep_freed_pictures()
        embeddable(pages[0][1])  # a conversion alone: its freed picture stays in Pillow's cache
        assert Image.core.get_stats()["blocks_cached"] > 0
        build_pdf(ArchiveContent(pages, Book(title="kept")), tmp_path / "book.pdf", tmp_path / "scratch")
        assert Image.core.get_stats()["blocks_cached"] == 0
        assert len(PdfReader(tmp_path / "book.pdf").pages) == 3
    finally:
        Image.core.set_blocks_max(before)
