"""The web page's pasted links and the server's job list, in a real browser (see test_web.py)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from playwright.sync_api import Browser, expect

from tests.browser import chromium
from tests.conftest import LiveServer, make_settings
from tests.fakes.gelbooru import GelbooruDouble, make_posts
from tests.fakes.jm import FakeAlbum, JmDouble
from tests.test_web import Ui, new_ui, search, state_of

MINE = "0b6e2f4a-3c1d-4e5f-9a8b-7c6d5e4f3a2b"  # a UUID: the page replaces any other stored id


@pytest.fixture(scope="module")
def jm() -> Iterator[JmDouble]:
    with JmDouble() as double:
        double.add_album(FakeAlbum.single("100201", "Phone Started This", 2))
        double.add_album(FakeAlbum.single("100202", "Other Tab Started This", 2))
        yield double


@pytest.fixture(scope="module")
def gb() -> Iterator[GelbooruDouble]:
    with GelbooruDouble(make_posts(8, image_bytes=2000)) as double:
        yield double


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, jm: JmDouble, gb: GelbooruDouble) -> Iterator[LiveServer]:
    settings = make_settings(Path(tmp_path_factory.mktemp("web")), jm, gelbooru_url=gb.base_url,
                             gelbooru_api_key=gb.api_key, gelbooru_user_id=gb.user_id, gelbooru_api_rate=100)
    with LiveServer(settings) as live:
        yield live


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with chromium() as (_, launched):
        yield launched


@pytest.fixture
def ui(browser: Browser, server: LiveServer) -> Iterator[Ui]:
    yield from new_ui(browser, server, viewport={"width": 1280, "height": 900})


def test_a_jm_link_pasted_in_the_search_box_starts_that_chapter(ui: Ui) -> None:
    page = ui.open()
    search(page, "https://18comic.vip/photo/200002")
    item = ui.job(page, "JM200001, chapter 200002")
    expect(state_of(item)).to_have_text("ready", timeout=15_000)
    expect(page.locator("#jm-status")).to_contain_text("was added to Jobs")


def test_a_booru_post_link_pasted_in_the_tags_box_downloads_that_post(ui: Ui, gb: GelbooruDouble) -> None:
    page = ui.open()
    page.get_by_role("tab", name="Booru").click()
    post = gb.posts[3]
    page.get_by_role("textbox", name="Tags").fill(f"{gb.base_url}/index.php?page=post&s=view&id={post['id']}")
    page.get_by_role("button", name="Download dataset").click()
    item = ui.job(page, f"gelbooru: post {post['id']}")
    expect(state_of(item)).to_have_text("ready", timeout=15_000)


def test_an_unusable_link_shows_the_servers_sentence(ui: Ui) -> None:
    page = ui.open()
    ui.watches[-1].allow_failure(422, "/v1/download/url")
    search(page, "https://example.com/gallery/1")
    expect(page.locator("#jm-status")).to_contain_text("cannot use this link")


def test_the_jobs_list_shows_the_servers_jobs_and_all_jobs_on_request(ui: Ui, server: LiveServer) -> None:
    with httpx.Client(base_url=server.url) as http:
        assert http.post("/v1/download/album/100201", json={"client_id": "phone"}).status_code == 202
        assert http.post("/v1/download/album/100202", json={"client_id": MINE}).status_code == 202
    page = ui.open(lambda p: p.add_init_script(f"localStorage.setItem('jmbooru.clientId', '{MINE}')"))
    mine = ui.job(page, "Other Tab Started This")
    theirs = ui.job(page, "Phone Started This")
    expect(mine).to_have_count(1)  # this browser's client id, though this browser never started it
    expect(theirs).to_have_count(0)
    all_jobs = page.get_by_role("button", name="All jobs")
    all_jobs.click()
    expect(all_jobs).to_have_attribute("aria-pressed", "true")
    expect(theirs).to_have_count(1)
    items = page.get_by_role("list", name="Jobs").get_by_role("listitem")
    expect(items.first).to_contain_text("Other Tab Started This")  # this browser's jobs first
    all_jobs.click()
    expect(theirs).to_have_count(0)
    expect(mine).to_have_count(1)
    # Another client's jobs are never remembered as this browser's.
    assert "100201" not in (page.evaluate("localStorage.getItem('jmbooru.jobs')") or "")
