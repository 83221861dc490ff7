"""The page with a reader library: pools on the Booru tab (find, download, save to the library) and
"Save to library" in the album view, in a real browser."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, expect

from tests.browser import chromium
from tests.conftest import LiveServer, make_settings
from tests.fakes.danbooru import DanbooruDouble
from tests.fakes.jm import JmDouble
from tests.test_pools import TAG_TYPES, pool_posts
from tests.test_web import Ui, new_ui, search


@pytest.fixture(scope="module")
def jm() -> Iterator[JmDouble]:
    with JmDouble() as double:
        yield double


@pytest.fixture(scope="module")
def danbooru() -> Iterator[DanbooruDouble]:
    with DanbooruDouble(pool_posts(), tag_types=TAG_TYPES) as double:
        double.add_pool(7, "Miku's_Comic_Day", [13, 10, 12])
        yield double


@pytest.fixture(scope="module")
def library(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return Path(tmp_path_factory.mktemp("library"))


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, jm: JmDouble, danbooru: DanbooruDouble,
           library: Path) -> Iterator[LiveServer]:
    settings = make_settings(Path(tmp_path_factory.mktemp("web-library")), jm, library_dir=library,
                             danbooru_url=danbooru.base_url, danbooru_api_rate=1000)
    with LiveServer(settings) as live:
        yield live


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with chromium() as (_, launched):
        yield launched


@pytest.fixture
def ui(browser: Browser, server: LiveServer) -> Iterator[Ui]:
    yield from new_ui(browser, server, viewport={"width": 1280, "height": 900})


def test_find_a_pool_and_save_it_and_an_album_to_the_library(ui: Ui, library: Path) -> None:
    page = ui.open()
    page.get_by_role("tab", name="Booru").click()
    page.get_by_role("combobox", name="Site").select_option("danbooru")
    page.get_by_text("Pools: a pool is a comic").click()
    page.get_by_role("searchbox", name="Pool name").fill("comic")
    page.get_by_role("button", name="Find pools").click()
    pools = page.get_by_role("list", name="Pools")
    expect(pools.get_by_role("listitem")).to_have_count(1)
    expect(pools).to_contain_text("Miku's Comic Day")
    pools.get_by_role("button", name="Save pool Miku's Comic Day to library").click()
    job = ui.job(page, "Miku's Comic Day → library")
    expect(job).to_contain_text("Filed in the library: Danbooru Pools/Miku's Comic Day/Miku's Comic Day.cbz",
                                timeout=20_000)
    assert (library / "Danbooru Pools" / "Miku's Comic Day" / "Miku's Comic Day.cbz").is_file()

    page.get_by_role("tab", name="JM").click()
    search(page, "200001")
    page.get_by_role("button", name="Two Chapters", exact=True).click()
    page.get_by_role("dialog").get_by_role("button", name="Save to library").click()
    page.keyboard.press("Escape")
    expect(ui.job(page, "Two Chapters → library")).to_contain_text("Filed in the library: JM/Two Chapters/",
                                                                   timeout=20_000)
    assert sorted(p.name for p in (library / "JM" / "Two Chapters").iterdir()) == [
        "Two Chapters - c001 第1話.cbz", "Two Chapters - c002 第2話.cbz"]
