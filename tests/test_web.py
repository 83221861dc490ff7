"""The web page in a real browser (Playwright + Debian's Chromium) against a real uvicorn server and
the JM and Gelbooru doubles. One browser and one server for the module; a fresh browser context
(empty localStorage) per test. Every test also checks that no request left the server's origin
and that the page logged no error.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest
from playwright.sync_api import Browser, BrowserContext, Locator, Page, Route, WebSocketRoute, expect

from app.archives import FORMATS
from tests.browser import PageWatch, chromium, saved_zip
from tests.conftest import LiveServer, make_settings, wait_until
from tests.fakes.gelbooru import GelbooruDouble, make_posts
from tests.fakes.jm import FakeAlbum, JmDouble

TRICKY_TITLE = 'Bold <b>move</b> & "quoted" | <img src=x> end'
EXTRA_ALBUMS = [
    FakeAlbum.single("100101", "Progress Album", 24),
    FakeAlbum.single("100102", "Cancel Album", 40),
    FakeAlbum.single("100103", "Reload Album", 2),
    FakeAlbum.single("100104", TRICKY_TITLE, 2),
    FakeAlbum.single("100105", "Away Album", 4),
    FakeAlbum.single("100106", "Phone Album", 2),
    FakeAlbum.single("100107", "Broken Album", 2),
    FakeAlbum.single("100108", "Reconnect Album", 12),
]


@pytest.fixture(scope="module")
def jm() -> Iterator[JmDouble]:
    with JmDouble() as double:
        for album in EXTRA_ALBUMS:
            double.add_album(album)
        yield double


@pytest.fixture(scope="module")
def gb() -> Iterator[GelbooruDouble]:
    with GelbooruDouble(make_posts(30, image_bytes=4000)) as double:
        yield double


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, jm: JmDouble, gb: GelbooruDouble) -> Iterator[LiveServer]:
    settings = make_settings(Path(tmp_path_factory.mktemp("web")), jm, gelbooru_url=gb.base_url,
                             gelbooru_api_key=gb.api_key, gelbooru_user_id=gb.user_id, gelbooru_api_rate=100,
                             max_concurrent_jobs=4)
    with LiveServer(settings) as live:
        yield live


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with chromium() as (_, launched):
        yield launched


def missing_routes(server: LiveServer) -> list[str]:
    """Endpoints of the contract that this server does not have yet: the page answers their 404
    gracefully, but Chromium still logs the failed load."""
    paths = server.app.openapi()["paths"]
    wanted = {"/v1/booru/sites": "/v1/booru/sites"}
    return [prefix for path, prefix in wanted.items() if path not in paths]


@dataclass
class Ui:
    server: LiveServer
    context: BrowserContext
    watches: list[PageWatch] = field(default_factory=list)

    def open(self, prepare: Callable[[Page], None] | None = None) -> Page:
        page = self.context.new_page()
        watch = PageWatch(page, self.server.url)
        for prefix in missing_routes(self.server):
            watch.allow_failure(404, prefix)
        self.watches.append(watch)
        if prepare is not None:
            prepare(page)
        page.goto("/")
        expect(page.locator("html[data-ready]")).to_have_count(1)
        return page

    def job(self, page: Page, title: str) -> Locator:
        return page.get_by_role("list", name="Jobs").get_by_role("listitem").filter(has_text=title)


def new_ui(browser: Browser, server: LiveServer, **options: object) -> Iterator[Ui]:
    context = browser.new_context(base_url=server.url, accept_downloads=True, **options)  # type: ignore[arg-type]
    ui = Ui(server, context)
    yield ui
    context.close()
    for watch in ui.watches:
        watch.check()


@pytest.fixture
def ui(browser: Browser, server: LiveServer) -> Iterator[Ui]:
    yield from new_ui(browser, server, viewport={"width": 1280, "height": 900})


def search(page: Page, query: str) -> Locator:
    """Search JM (or start a pasted link). A search returns once its results are listed: until then
    the list still shows the ranking the page opened with, which may hold the same album, and a
    click there can land just as the search results replace it."""
    page.get_by_role("searchbox", name="Search JM").fill(query)
    page.get_by_role("searchbox", name="Search JM").press("Enter")
    if not re.match(r"https?://", query):
        expect(page.locator("#jm-status")).to_contain_text(f"\u201c{query}\u201d")
    return page.get_by_role("list", name="Albums")


def state_of(item: Locator) -> Locator:
    return item.locator(".job-state")


def test_rankings_and_search_show_the_doubles_titles(ui: Ui, server: LiveServer) -> None:
    page = ui.open()
    expect(page.get_by_role("status").filter(has_text="Server")).to_have_text(
        re.compile(r"^Server ok · v\d+\.\d+\.\d+ · embedded · \d+ ms$"))
    albums = page.get_by_role("list", name="Albums")
    for period in ("Week", "All"):
        page.get_by_role("button", name=period, exact=True).click()
        expected = [item["title"] for item in httpx.get(f"{server.url}/v1/rank/{period.lower()}").json()]
        assert len(expected) > 10
        expect(albums.locator(".card-title")).to_have_text(expected)
        expect(page.get_by_role("button", name=period, exact=True)).to_have_attribute("aria-pressed", "true")
    search(page, "romance")
    expect(albums.locator(".card-title")).to_have_text(["Filler Romance 5", "Filler Romance 2", "Filler Romance 0"])
    expect(albums.locator("img").first).to_have_attribute("src", "/v1/get/cover/100015")
    expect(page.get_by_role("button", name="More albums")).to_be_hidden()  # 3 results: one page


def test_a_title_with_markup_renders_as_text(ui: Ui, server: LiveServer) -> None:
    page = ui.open()
    served = httpx.get(f"{server.url}/v1/search/100104/1").json()[0]["title"]
    assert "<b>" in served and '"' in served
    albums = search(page, "100104")
    expect(albums.locator(".card-title")).to_have_count(1)
    assert albums.locator(".card-title").text_content() == served
    assert albums.locator("b, i, img[src='x']").count() == 0
    albums.get_by_role("button", name=served, exact=True).click()
    dialog = page.get_by_role("dialog")
    expect(dialog.get_by_role("heading", level=2)).to_have_text(served)
    assert dialog.locator("b").count() == 0
    dialog.get_by_role("button", name="Download album").click()
    expect(ui.job(page, "end").locator(".job-title")).to_have_text(served)


def test_album_view_has_tags_authors_chapters_and_comments(ui: Ui) -> None:
    page = ui.open()
    page.get_by_role("button", name="Scrambled Two Chapters", exact=True).click()
    dialog = page.get_by_role("dialog")
    expect(dialog.get_by_role("heading", name="Scrambled Two Chapters")).to_be_visible()
    for name in ("Kim", "scrambled", "series"):
        expect(dialog.get_by_role("button", name=name, exact=True)).to_be_visible()
    expect(dialog).to_contain_text("12,300")  # views
    expect(dialog.locator("#album-chapters li")).to_have_text(["Part 1", "Part 2"])
    expect(dialog.get_by_role("combobox", name="Layout")).to_have_value("flat")

    # 23 top-level comments, 10 a page; a reply and a reply to it are nested under comment 2.
    top_level = dialog.locator("#album-comments > li")
    expect(top_level).to_have_count(10)
    expect(top_level.first.locator(".comment-text")).to_have_text("First line\nsecond line & more")
    assert top_level.first.locator(".comment-text").inner_text() == "First line\nsecond line & more"
    expect(top_level.nth(1).locator(".replies .replies")).to_contain_text("a reply to the reply")
    expect(top_level.nth(1).locator("details summary")).to_have_text("Spoiler")  # hidden until opened
    dialog.get_by_role("button", name="More comments").click()
    expect(top_level).to_have_count(20)
    dialog.get_by_role("button", name="More comments").click()
    expect(top_level).to_have_count(23)
    expect(top_level.last).to_contain_text("Comment number 23 on Scrambled Two Chapters")
    expect(dialog.get_by_role("button", name="More comments")).to_be_hidden()

    dialog.get_by_role("combobox", name="Layout").select_option("chapters")
    dialog.get_by_role("button", name="Download album").click()
    item = ui.job(page, "Scrambled Two Chapters (zip, chapters)")
    expect(state_of(item)).to_have_text("ready", timeout=15_000)
    archive = saved_zip(page, item.get_by_role("link", name="Save"))
    assert {name.split("/")[0] for name in archive.namelist() if "/" in name} == {"001 Part 1", "002 Part 2"}

    page.get_by_role("button", name="Scrambled Two Chapters", exact=True).click()
    expect(dialog.get_by_role("combobox", name="Layout")).to_have_value("chapters")  # remembered
    dialog.get_by_role("button", name="Kim", exact=True).click()  # an author searches for their albums
    expect(dialog).to_be_hidden()
    expect(page.get_by_role("searchbox", name="Search JM")).to_have_value("Kim")
    expect(page.get_by_role("list", name="Albums").locator(".card-title")).to_have_text(["Scrambled Two Chapters"])


def test_format_choices_follow_the_servers_format_registry(ui: Ui, server: LiveServer) -> None:
    listed = httpx.get(f"{server.url}/v1/formats").json()["formats"]
    assert [f["name"] for f in listed] == list(FORMATS)  # the registry, as the server lists it
    # A server that lists fewer formats gets only those offered; the page asks for the list once,
    # and a choice made while it loads stays.
    held: list[Route] = []
    page = ui.open(lambda p: p.route("**/v1/formats", lambda route: held.append(route)))
    page.get_by_role("button", name="Plain Album", exact=True).click()
    dialog = page.get_by_role("dialog")
    format_ = dialog.get_by_role("combobox", name="Format")
    format_.select_option("cbz")
    # Playwright delivers the held request to the route while one of its calls waits.
    wait_until(lambda: held, timeout=5, interval=0.02, pause=lambda seconds: page.wait_for_timeout(seconds * 1000),
               message="the page never asked for the format list")
    assert len(held) == 1, "the page asks for the format list once"
    held[0].fulfill(json={"formats": [f for f in listed if f["name"] in ("zip", "cbz")]})
    expect(dialog.get_by_role("combobox", name="Layout")).to_be_disabled()  # layouts are for zips
    expect(format_.locator("option:disabled")).to_have_text(["pdf"])
    expect(format_).to_have_value("cbz")
    with page.expect_request(re.compile(r"/v1/download/album/100001$")) as request:
        dialog.get_by_role("button", name="Download album").click()
    assert request.value.post_data_json == {"client_id": page.evaluate("localStorage.getItem('jmbooru.clientId')"),
                                            "format": "cbz"}

    # A format added to the registry shows up in the page without a change to the page.
    page = ui.open(lambda p: p.route("**/v1/formats", lambda route: route.fulfill(json={"formats": [
        *listed, {"name": "epub", "extension": ".epub", "media_type": "application/epub+zip",
                  "description": "a test format", "layouts": ["flat"]}]})))
    ui.watches[-1].allow_failure(422, "/v1/download/album/")
    page.get_by_role("button", name="Plain Album", exact=True).click()
    format_ = page.get_by_role("dialog").get_by_role("combobox", name="Format")
    expect(format_.locator("option")).to_have_text([*FORMATS, "epub"])


def test_download_shows_live_progress_then_save_gives_the_album(ui: Ui, jm: JmDouble) -> None:
    jm.set_latency(0.12, "/media/photos/100101/")
    page = ui.open()
    search(page, "100101").get_by_role("button", name="Download Progress Album").click()
    item = ui.job(page, "Progress Album")
    bar = item.get_by_role("progressbar")
    seen: set[tuple[str | None, str | None]] = set()

    def ready() -> bool:
        seen.add((bar.get_attribute("value"), bar.get_attribute("max")))
        return state_of(item).text_content() == "ready"

    wait_until(ready, timeout=20, interval=0.02)
    assert any(max_ == "24" and value not in (None, "0", "24") for value, max_ in seen), seen
    expect(bar).to_have_attribute("value", "24")
    expect(item).to_contain_text("24 / 24 files")
    expect(item).to_contain_text("expires in 30 min")
    expect(item.get_by_role("button", name="Cancel")).to_have_count(0)
    archive = saved_zip(page, item.get_by_role("link", name="Save"))
    pages = sorted(name for name in archive.namelist() if name.endswith(".webp"))
    assert len(pages) == 24
    for index, name in enumerate(pages, start=1):
        assert archive.read(name) == jm.served_bytes("100101", index)


def test_cancel_stops_a_running_download(ui: Ui, jm: JmDouble, server: LiveServer) -> None:
    jm.set_latency(1.5, "/media/photos/100102/")  # still running when Cancel is clicked
    page = ui.open()
    search(page, "100102").get_by_role("button", name="Download Cancel Album").click()
    item = ui.job(page, "Cancel Album")
    expect(state_of(item)).to_have_text("running", timeout=10_000)
    item.get_by_role("button", name="Cancel").click()
    expect(state_of(item)).to_have_text("cancelled")
    expect(item.get_by_role("button", name="Cancel")).to_have_count(0)
    expect(item.get_by_role("link", name="Save")).to_have_count(0)
    job_id = page.evaluate("JSON.parse(localStorage.getItem('jmbooru.jobs'))[0].id")
    assert httpx.get(f"{server.url}/v1/jobs/{job_id}").json()["state"] == "cancelled"


def test_a_failed_download_shows_its_reason(ui: Ui, jm: JmDouble) -> None:
    jm.fail("/media/photos/100107/", status=503)
    page = ui.open()
    search(page, "100107").get_by_role("button", name="Download Broken Album").click()
    item = ui.job(page, "Broken Album")
    expect(state_of(item)).to_have_text("failed", timeout=15_000)
    expect(item.locator(".job-message")).to_contain_text("could not be downloaded from JM")
    expect(item.get_by_role("link", name="Save")).to_have_count(0)
    expect(item.get_by_role("button", name="Remove")).to_be_visible()


def test_the_live_socket_reconnects_after_a_drop(ui: Ui, jm: JmDouble) -> None:
    sockets: list[WebSocketRoute] = []

    def follow(ws: WebSocketRoute) -> None:
        ws.connect_to_server()
        sockets.append(ws)

    jm.set_latency(1.0, "/media/photos/100108/")  # seen running before the socket drops
    page = ui.open(lambda p: p.route_web_socket("**/ws/notifications/**", follow))
    search(page, "100108").get_by_role("button", name="Download Reconnect Album").click()
    live = page.locator("#socket-state")
    expect(live).to_have_attribute("data-state", "live")
    expect(state_of(ui.job(page, "Reconnect Album"))).to_have_text("running", timeout=10_000)
    sockets[0].close(code=1012, reason="restarting")  # as when the server restarts
    expect(live).not_to_have_attribute("data-state", "live")
    expect(live).to_have_attribute("data-state", "live", timeout=5_000)
    assert len(sockets) == 2
    expect(state_of(ui.job(page, "Reconnect Album"))).to_have_text("ready", timeout=15_000)
    expect(ui.job(page, "Reconnect Album")).to_contain_text("12 / 12 files")


def test_jobs_are_listed_again_after_a_reload_and_after_finishing_while_away(
    ui: Ui, jm: JmDouble, server: LiveServer
) -> None:
    page = ui.open()
    search(page, "100103").get_by_role("button", name="Download Reload Album").click()
    expect(state_of(ui.job(page, "Reload Album"))).to_have_text("ready", timeout=15_000)
    jm.set_latency(1.5, "/media/photos/100105/")  # running long enough to be seen, and still running when the page closes
    search(page, "100105").get_by_role("button", name="Download Away Album").click()
    expect(state_of(ui.job(page, "Away Album"))).to_have_text(["running"], timeout=10_000)
    client_id = page.evaluate("localStorage.getItem('jmbooru.clientId')")
    away_id = page.evaluate("JSON.parse(localStorage.getItem('jmbooru.jobs'))[0].id")
    page.close()  # the job finishes while no page is open

    wait_until(lambda: httpx.get(f"{server.url}/v1/jobs/{away_id}").json()["state"] == "ready", timeout=20)
    page = ui.open()
    titles = page.get_by_role("list", name="Jobs").locator(".job-title")
    expect(titles).to_have_text(["Away Album", "Reload Album"])
    for title in ("Away Album", "Reload Album"):
        expect(state_of(ui.job(page, title))).to_have_text("ready")
        expect(ui.job(page, title).get_by_role("link", name="Save")).to_have_attribute("href", re.compile(r"^/v1/jobs/\w+/file$"))
    # A job the server no longer knows (forgotten a week after it ended) leaves the list.
    ui.watches[-1].allow_failure(404, "/v1/jobs/")
    page.evaluate("""() => localStorage.setItem('jmbooru.jobs', JSON.stringify(
        [{id: 'forgottenjob', label: 'Forgotten', state: 'ready', expires: Date.now() + 600000},
         ...JSON.parse(localStorage.getItem('jmbooru.jobs'))]))""")
    page.reload()
    expect(titles).to_have_text(["Away Album", "Reload Album"])
    expect(state_of(ui.job(page, "Away Album"))).to_have_text("ready")
    assert page.evaluate("localStorage.getItem('jmbooru.clientId')") == client_id


def test_booru_preview_and_dataset_with_caption_options(ui: Ui) -> None:
    page = ui.open()
    page.get_by_role("tab", name="Booru").click()
    expect(page.get_by_role("combobox", name="Site")).to_have_value("gelbooru")
    page.get_by_role("textbox", name="Tags").fill("1girl")
    page.get_by_role("spinbutton", name="Images").fill("6")
    page.get_by_role("button", name="Preview posts").click()
    posts = page.get_by_role("list", name="Posts")
    expect(posts.get_by_role("listitem")).to_have_count(30)
    wait_until(lambda: posts.get_by_role("img").first.evaluate("img => img.complete && img.naturalWidth > 0"))
    page.get_by_text("Caption and filter options").click()
    page.get_by_role("checkbox", name="Underscores become spaces").uncheck()
    page.get_by_role("button", name="Download dataset").click()
    item = ui.job(page, "gelbooru: 1girl")
    expect(state_of(item)).to_have_text("ready", timeout=15_000)
    expect(item).to_contain_text("6 / 6 files")
    archive = saved_zip(page, item.get_by_role("link", name="Save"))
    names = archive.namelist()
    assert len([n for n in names if n.endswith(".txt")]) == 6 and len(names) == 12
    tags = {tag for n in names if n.endswith(".txt") for tag in archive.read(n).decode().split(", ")}
    assert any("_" in tag and len(tag) > 3 for tag in tags), tags  # underscores kept, as asked


def test_booru_export_and_duplicate_options_reach_the_request_and_the_archive(ui: Ui) -> None:
    page = ui.open()
    page.get_by_role("tab", name="Booru").click()
    page.get_by_role("textbox", name="Tags").fill("solo")
    page.get_by_role("spinbutton", name="Images").fill("4")
    page.get_by_text("Export and duplicate options").click()
    expect(page.get_by_text("Put first in every caption (no comma)")).to_be_visible()  # each option explains itself
    page.get_by_role("checkbox", name="metadata.jsonl").check()
    page.get_by_role("checkbox", name="dataset_config.toml").check()
    page.get_by_role("textbox", name="Trigger word").fill("my_lora")
    page.get_by_role("spinbutton", name="Repeats").fill("10")
    page.get_by_role("checkbox", name="Drop near-duplicate images").check()
    page.get_by_role("combobox", name="Skip variants").select_option("children")
    with page.expect_request(re.compile(r"/v1/download/booru/gelbooru$")) as request:
        page.get_by_role("button", name="Download dataset").click()
    body = request.value.post_data_json
    assert (body["exports"], body["export_options"], body["dedupe"], body["skip_variants"]) == (
        ["metadata_jsonl", "kohya_toml"], {"trigger": "my_lora", "num_repeats": 10}, {"keep": "largest"}, "children")
    item = ui.job(page, "gelbooru: solo")
    expect(state_of(item)).to_have_text("ready", timeout=15_000)
    names = saved_zip(page, item.get_by_role("link", name="Save")).namelist()
    assert {"metadata.jsonl", "dataset_config.toml", "dupes.json"} <= set(names)


@pytest.fixture
def phone(browser: Browser, server: LiveServer) -> Iterator[Ui]:
    yield from new_ui(browser, server, viewport={"width": 390, "height": 844}, color_scheme="dark",
                      is_mobile=True, has_touch=True)


def test_phone_layout_in_dark_mode_has_no_horizontal_scroll(phone: Ui) -> None:
    page = phone.open()

    def width() -> int:
        return int(page.evaluate("document.scrollingElement.scrollWidth"))

    assert page.evaluate("getComputedStyle(document.body).backgroundColor") == "rgb(17, 20, 24)"
    expect(page.get_by_role("list", name="Albums").get_by_role("listitem").first).to_be_visible()
    assert width() <= 390
    page.get_by_role("button", name="Two Chapters", exact=True).click()
    expect(page.get_by_role("dialog")).to_contain_text("Carol")
    assert width() <= 390
    page.get_by_role("button", name="Close").click()
    search(page, "100106").get_by_role("button", name="Download Phone Album").click()
    expect(state_of(phone.job(page, "Phone Album"))).to_have_text("ready", timeout=15_000)
    page.get_by_role("button", name="Settings").click()
    assert width() <= 390
    page.get_by_role("tab", name="Booru").click()
    page.get_by_role("textbox", name="Tags").fill("1girl")
    page.get_by_role("button", name="Preview posts").click()
    expect(page.get_by_role("list", name="Posts").get_by_role("listitem")).to_have_count(30)
    page.get_by_text("Caption and filter options").click()
    assert width() <= 390
