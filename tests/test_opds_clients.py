"""Every OPDS document through the readers' own parsing: a KOReader stand-in (tests/opds/
koreader_like.lua, under Debian's luajit), Readium's r2-opds-js (Thorium's OPDS 1 → 2 converter,
from npm into tests/opds_readium) and a RELAX NG grammar with jing. Pages are then fetched the way
KOReader's page streaming does (its URLs, Basic auth on every page) and compared by pixels."""

from __future__ import annotations

import base64
import io
import json
import re
import subprocess
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any
from urllib.parse import urljoin

import httpx
import pytest
from PIL import Image, ImageChops, ImageStat

from tests.conftest import app_client, make_settings
from tests.fakes.jm import ILLEGAL_TITLE, JmDouble
from tests.fakes.jm_account import FakeAccount
from tests.tools import require

HERE = Path(__file__).parent
KOREADER = HERE / "opds" / "koreader_like.lua"
GRAMMAR = HERE / "opds" / "jmbooru-opds.rnc"
READIUM = HERE / "opds_readium"
KEY = "reader-key"
PASSWORD = "fav password"
SCREEN_WIDTH = 150  # what KOReader sends as {maxWidth}: the screen's width


def tool(name: str) -> str:
    return require(name)  # a skip with a reason on a machine without it, a failure in CI


@pytest.fixture(scope="module")
def readium() -> Path:
    """r2-opds-js, installed from npm into tests/opds_readium (not committed) when missing."""
    if not (READIUM / "node_modules" / "r2-opds-js").is_dir():
        # --ignore-scripts: r2-opds-js's install script is a clean-up that needs rimraf.
        subprocess.run([tool("npm"), "install", "--no-audit", "--no-fund", "--ignore-scripts"], cwd=READIUM,
                       check=True, capture_output=True, timeout=600)
    return READIUM / "to_opds2.js"


def basic() -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(f"koreader:{KEY}".encode()).decode()}


@pytest.fixture
async def reader(tmp_path: Path, jm_double: JmDouble) -> AsyncIterator[httpx.AsyncClient]:
    jm_double.accounts.add(FakeAccount("owner", PASSWORD, "77", [("200001", "0"), ("500001", "0")], {}))
    settings = make_settings(tmp_path / "data", jm_double, api_key=KEY, jm_username="owner",
                             jm_password=PASSWORD, opds_wait_seconds=30)
    async with app_client(settings) as client:
        client.headers.update(basic())  # as KOReader does: the catalog's user name and password
        yield client


FEEDS = [
    "/opds", "/opds/jm/rank/day", "/opds/jm/rank/week", "/opds/jm/rank/month", "/opds/jm/rank/all",
    "/opds/jm/favorites", "/opds/archives", "/opds/jm/album/200001", "/opds/jm/album/500001",
    "/opds/jm/search?q=romance", "/opds/jm/search?q=200001",
    "/opds/jm/search?q=full%20color",  # a query with a space: the feed's id must stay a URI
    "/opds/jm/search?q=100002",  # a title with quotes, <, >, &, a tab and non-BMP characters
]


async def fetch_all(client: httpx.AsyncClient, folder: Path) -> dict[str, Path]:
    """Every feed (after a CBZ download, so that the archives feed has an entry), saved to files."""
    assert (await client.get("/opds/jm/album/100001.cbz")).status_code == 200
    saved = {}
    for i, url in enumerate([*FEEDS, "/opds/search.xml"]):
        resp = await client.get(url)
        assert resp.status_code == 200, (url, resp.text)
        saved[url] = folder / f"doc{i}.xml"
        saved[url].write_bytes(resp.content)
    return saved


def koreader(mode: str, path: Path) -> Any:
    out = subprocess.run([tool("luajit"), str(KOREADER), mode, str(path), str(SCREEN_WIDTH)],
                         check=True, capture_output=True, text=True, timeout=60)
    return json.loads(out.stdout)


async def test_koreader_reads_every_feed_searches_and_streams_pages(
    reader: httpx.AsyncClient, jm_double: JmDouble, tmp_path: Path
) -> None:
    docs = await fetch_all(reader, tmp_path)
    root = koreader("feed", docs["/opds"])
    assert [item["url"] for item in root["items"]] == [
        "/opds/jm/rank/day", "/opds/jm/rank/week", "/opds/jm/rank/month", "/opds/jm/rank/all",
        "/opds/jm/favorites", "/opds/archives"]
    assert not any(item["opens_as_book"] for item in root["items"])  # they are followed, not opened
    assert root["search_description"] == "/opds/search.xml"

    # Search: KOReader turns {searchTerms} into %s and substitutes the URL-encoded words.
    template = koreader("osd", docs["/opds/search.xml"])["template"]
    assert template == "/opds/jm/search?q=%s" and "{" not in template
    (tmp_path / "found.xml").write_bytes((await reader.get(template.replace("%s", "500001"))).content)
    found = koreader("feed", tmp_path / "found.xml")
    assert [i["id"] for i in found["items"]] == ["urn:jmbooru:jm:album:500001"]

    # Element names are read literally: an Atom entry written with a prefix would be invisible.
    prefixed = tmp_path / "prefixed.xml"
    prefixed.write_text(docs["/opds/jm/album/500001"].read_text("utf-8").replace(
        '<entry>', '<atom:entry xmlns:atom="http://www.w3.org/2005/Atom">').replace("</entry>", "</atom:entry>"))
    assert koreader("feed", prefixed)["items"] == []

    # The favourites feed lists the account's favourites (folder 0) in JM's order, newest first.
    favourites = (await reader.get("/v1/favorites", headers={"X-API-Key": KEY})).json()["albums"]
    assert [i["id"] for i in koreader("feed", docs["/opds/jm/favorites"])["items"]] == [
        f"urn:jmbooru:jm:album:{a['album_id']}" for a in favourites] and len(favourites) == 2

    weird = koreader("feed", docs["/opds/jm/search?q=100002"])["items"][0]
    assert weird["title"] == jm_double.albums["100002"].name and weird["author"] == "Eve/Mallory"

    for url in FEEDS[1:]:
        feed = koreader("feed", docs[url])
        assert feed["items"], url
        assert feed["hrefs"].get("start") == "/opds"
        for item in feed["items"]:
            assert item["title"] != "Unknown" and item["opens_as_book"], (url, item)
            assert item.get("thumbnail") and item.get("image")
            kinds = [a.get("type") for a in item["acquisitions"] if "count" not in a]
            assert kinds and all(k in ("application/vnd.comicbook+zip", "application/zip") for k in kinds)
            if url != "/opds/archives":
                assert item.get("author") and item.get("content")
                streams = [a for a in item["acquisitions"] if "count" in a]
                assert len(streams) == 1 and streams[0]["count"] >= 1

    # The album feed of 200001: the album, then its two chapters with 3 and 2 pages.
    album = koreader("feed", docs["/opds/jm/album/200001"])
    counts = [next(a["count"] for a in i["acquisitions"] if "count" in a) for i in album["items"]]
    assert counts == [5, 3, 2]

    # Streaming the scrambled album 500001 as opdspse.lua does: page k of the viewer is
    # {pageNumber} = k - 1, {maxWidth} = the screen width, Basic auth on every request.
    (entry,) = koreader("feed", docs["/opds/jm/album/500001"])["items"]
    (stream,) = [a for a in entry["acquisitions"] if "count" in a]
    assert stream["count"] == 4
    for k, page_url in enumerate(stream["page_urls"], start=1):
        resp = await reader.get(urljoin("http://testserver/opds/jm/album/500001", page_url))
        assert resp.status_code == 200, resp.text
        page = Image.open(io.BytesIO(resp.content))
        assert f"maxWidth={SCREEN_WIDTH}" in page_url and page.width in (SCREEN_WIDTH - 1, SCREEN_WIDTH)
        original = jm_double.expected_image("500001", k).resize(page.size, Image.Resampling.LANCZOS)
        assert max(ImageStat.Stat(ImageChops.difference(page.convert("RGB").reduce(4), original.reduce(4))).mean) < 10


async def test_koreader_survives_quotes_and_cjk_in_attributes(reader: httpx.AsyncClient, jm_double: JmDouble,
                                                              tmp_path: Path) -> None:
    from tests.fakes.jm import FakeAlbum

    # Tags become category attributes: one with a double quote (Python's quoteattr would switch to
    # single quotes, which KOReader's lexer does not know), one in CJK only (not reported by it).
    jm_double.add_album(FakeAlbum.single("140001", 'Quoted "Tags"', 2, tags=['say "hi"', "中文"], authors=["Q"]))
    feed = tmp_path / "quoted.xml"
    feed.write_bytes((await reader.get("/opds/jm/search?q=140001")).content)
    (item,) = koreader("feed", feed)["items"]
    assert item["title"] == 'Quoted "Tags"' and item["author"] == "Q"
    assert [a["count"] for a in item["acquisitions"] if "count" in a] == [2]


async def test_next_links_are_what_koreader_pages_with(reader: httpx.AsyncClient, jm_double: JmDouble,
                                                       tmp_path: Path) -> None:
    from tests.fakes.jm import FakeAlbum

    for i in range(25):
        jm_double.add_album(FakeAlbum.single(str(130000 + i), f"Paged {i}", 1, tags=["paged"]))
    first = tmp_path / "p1.xml"
    first.write_bytes((await reader.get("/opds/jm/search?q=paged")).content)
    one = koreader("feed", first)
    second = tmp_path / "p2.xml"
    second.write_bytes((await reader.get(urljoin("http://testserver/opds/jm/search", one["hrefs"]["next"]))).content)
    two = koreader("feed", second)
    assert len(one["items"]) + len(two["items"]) == 25 and "next" not in two["hrefs"]


def jing(paths: list[Path]) -> subprocess.CompletedProcess[str]:
    return subprocess.run([tool("jing"), "-c", str(GRAMMAR), *map(str, paths)], capture_output=True, text=True,
                          timeout=120)


async def test_every_document_is_valid_against_the_grammar(reader: httpx.AsyncClient, tmp_path: Path) -> None:
    docs = await fetch_all(reader, tmp_path)
    filled = []
    for url, path in docs.items():
        text = path.read_text("utf-8")
        if url != "/opds/search.xml":  # PSE templates filled in, as a reader does ("{" is not a URI character)
            text = text.replace("{pageNumber}", "0").replace("{maxWidth}", "1080")
        out = tmp_path / f"filled-{path.name}"
        out.write_text(text, "utf-8")
        filled.append(out)
    result = jing(filled)
    assert result.returncode == 0, result.stdout + result.stderr
    # The grammar rejects what readers would not accept: a template with a second parameter, an
    # unfilled PSE template, an entry without an id.
    osd = docs["/opds/search.xml"].read_text("utf-8")
    album = filled[list(docs).index("/opds/jm/album/200001")].read_text("utf-8")
    raw_album = docs["/opds/jm/album/200001"].read_text("utf-8")
    for name, text in (("osd", osd.replace("{searchTerms}", "{searchTerms}&amp;p={startPage?}")),
                       ("template", raw_album),
                       ("no-id", re.sub(r"<id>urn:jmbooru:jm:photo:[0-9]+</id>", "", album, count=1))):
        wrong = tmp_path / f"wrong-{name}.xml"
        wrong.write_text(text, "utf-8")
        assert jing([wrong]).returncode != 0, name


def convert_with_readium(script: Path, paths: list[Path]) -> dict[str, Any]:
    out = subprocess.run([tool("node"), str(script), *map(str, paths)], check=True, capture_output=True,
                         text=True, timeout=120, cwd=READIUM)
    converted: dict[str, Any] = json.loads(out.stdout)
    return converted


async def test_readium_converts_every_feed(reader: httpx.AsyncClient, readium: Path, tmp_path: Path) -> None:
    docs = await fetch_all(reader, tmp_path)
    feeds = {url: path for url, path in docs.items() if url != "/opds/search.xml"}
    converted = convert_with_readium(readium, list(feeds.values()))
    for url, path in feeds.items():
        result = converted[str(path)]
        assert result["errors"] == [] and result["root"] == "feed", url
        feed = result["feed"]
        assert feed["metadata"]["title"], url
        rels = {link["rel"] for link in feed["links"]}
        assert {"self", "start", "search"} <= rels, url
        if url == "/opds":
            assert [n["href"] for n in feed["navigation"]][-2:] == ["/opds/jm/favorites", "/opds/archives"]
            assert "publications" not in feed
            continue
        publications = feed["publications"]
        assert publications, url
        for publication in publications:
            meta = publication["metadata"]
            assert meta["title"] and re.match(r"urn:jmbooru:(jm:album|jm:photo|job):", meta["identifier"])
            assert {i["rel"] for i in publication["images"]} == {"http://opds-spec.org/image",
                                                                 "http://opds-spec.org/image/thumbnail"}
            acquisitions = [li for li in publication["links"] if li["rel"] == "http://opds-spec.org/acquisition"]
            assert len(acquisitions) == 1
            if not meta["identifier"].startswith("urn:jmbooru:job:"):
                assert meta["author"] and meta["description"] and meta["subject"]
                assert acquisitions[0]["type"] == "application/vnd.comicbook+zip"
                assert any(li["rel"] == "http://vaemendis.net/opds-pse/stream" for li in publication["links"])
    weird = converted[str(feeds["/opds/jm/search?q=100002"])]["feed"]["publications"][0]["metadata"]
    assert weird["title"] == ILLEGAL_TITLE
    album = converted[str(feeds["/opds/jm/album/200001"])]["feed"]["publications"]
    assert [p["metadata"]["identifier"] for p in album] == [
        "urn:jmbooru:jm:album:200001", "urn:jmbooru:jm:photo:200001", "urn:jmbooru:jm:photo:200002"]
