"""The page on a server that needs an API key and lists other CORS origins (its own page's sockets
still connect), its random client id, and /docs and /redoc without internet, in Chromium."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Page, expect

from tests.browser import PageWatch, chromium, saved_zip
from tests.conftest import LiveServer, make_settings
from tests.fakes.jm import JmDouble

API_KEY = "open-sesame"


@pytest.fixture(scope="module")
def jm() -> Iterator[JmDouble]:
    with JmDouble() as double:
        yield double


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, jm: JmDouble) -> Iterator[LiveServer]:
    # JMBOORU_CORS_ORIGINS names another origin: the server's own page must still get its WebSockets.
    settings = make_settings(Path(tmp_path_factory.mktemp("web-key")), jm, api_key=API_KEY,
                             cors_origins=["https://app.example"])
    with LiveServer(settings) as live:
        yield live


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with chromium() as (_, launched):
        yield launched


@pytest.fixture
def page(browser: Browser, server: LiveServer) -> Iterator[tuple[Page, PageWatch]]:
    context = browser.new_context(base_url=server.url, accept_downloads=True)
    page = context.new_page()
    watch = PageWatch(page, server.url)
    yield page, watch
    context.close()
    watch.check()


def test_a_401_asks_for_the_api_key_and_with_it_downloads_work(page: tuple[Page, PageWatch],
                                                              jm: JmDouble) -> None:
    ui, watch = page
    watch.allow_failure(401, "/v1/download/album/")  # the first attempt, before the key is set
    ui.goto("/")
    albums = ui.get_by_role("list", name="Albums")
    expect(albums.get_by_role("listitem").first).to_be_visible()  # reading JM needs no key
    albums.get_by_role("button", name="Download Plain Album").click()
    expect(ui.get_by_role("alert")).to_contain_text("This server needs an API key: open Settings and enter it.")
    expect(ui.get_by_role("list", name="Jobs").get_by_role("listitem")).to_have_count(0)

    ui.get_by_role("button", name="Settings").click()
    ui.get_by_role("textbox", name="API key").fill(API_KEY)
    ui.get_by_role("button", name="Save settings").click()
    expect(ui.get_by_role("alert")).to_be_hidden()
    albums.get_by_role("button", name="Download Plain Album").click()
    item = ui.get_by_role("list", name="Jobs").get_by_role("listitem").filter(has_text="Plain Album")
    expect(item.locator(".job-state")).to_have_text("ready", timeout=15_000)
    save = item.get_by_role("link", name="Save")
    expect(save).to_have_attribute("href", re.compile(rf"/file\?api_key={API_KEY}$"))
    archive = saved_zip(ui, save)
    pages = sorted(name for name in archive.namelist() if name.endswith(".webp"))
    assert [archive.read(name) for name in pages] == [jm.served_bytes("100001", i) for i in range(1, 6)]

    ui.reload()  # the key is remembered, and so is the job
    expect(item.locator(".job-state")).to_have_text("ready")
    expect(ui.locator("#socket-state")).to_have_attribute("data-state", "live")


UUID_V4 = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}")


@pytest.mark.parametrize("random_uuid", [True, False], ids=["randomUUID", "fallback"])
def test_the_client_id_is_a_random_uuid_replacing_an_old_guessable_one(browser: Browser, server: LiveServer,
                                                                      random_uuid: bool) -> None:
    ids = []
    for _ in range(2):
        context = browser.new_context(base_url=server.url)
        # An id from an older page ("web-" and hex) is replaced; without crypto.randomUUID (an insecure
        # context: a LAN address over plain http) the fallback builds the same kind of UUID.
        context.add_init_script(f"localStorage.setItem('jmbooru.apiKey', '{API_KEY}');"
                                "localStorage.setItem('jmbooru.clientId', 'web-0123456789abcdef0123');"
                                + ("" if random_uuid else "delete Crypto.prototype.randomUUID;"))
        page = context.new_page()
        watch = PageWatch(page, server.url)
        page.goto("/")
        expect(page.locator("#client-id")).to_have_text(UUID_V4)
        ids.append(page.evaluate("localStorage.getItem('jmbooru.clientId')"))
        context.close()
        watch.check()
    assert all(UUID_V4.fullmatch(i) for i in ids) and ids[0] != ids[1], ids


def test_docs_and_redoc_render_with_nothing_from_outside(page: tuple[Page, PageWatch]) -> None:
    ui, _ = page
    ui.goto("/docs")
    expect(ui.locator(".swagger-ui .info .title")).to_contain_text("jmbooru")
    expect(ui.locator(".opblock-summary-path").filter(has_text="/v1/health")).to_be_visible()
    ui.goto("/redoc")
    expect(ui.get_by_role("heading", level=1)).to_contain_text("jmbooru")
    expect(ui.get_by_text("/v1/rank/{period}").first).to_be_attached()
