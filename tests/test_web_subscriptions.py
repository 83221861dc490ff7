"""The page's Subscriptions tab in a real browser: follow an album from its view, see it listed with its
last and next check, check it now (the new chapter's job appears in Jobs), pause it, remove it."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, expect

from tests.browser import chromium
from tests.conftest import LiveServer, make_settings
from tests.fakes.jm import FakeAlbum, FakeChapter, JmDouble
from tests.test_web import Ui, new_ui, search


@pytest.fixture(scope="module")
def jm() -> Iterator[JmDouble]:
    with JmDouble() as double:
        double.add_album(FakeAlbum("100201", "Followed Series", [FakeChapter("100201", "One", 2, 1),
                                                                  FakeChapter("100202", "Two", 2, 2)]))
        yield double


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, jm: JmDouble) -> Iterator[LiveServer]:
    settings = make_settings(Path(tmp_path_factory.mktemp("web-subs")), jm, subscription_min_interval_seconds=60,
                             subscription_tick_seconds=3600)
    with LiveServer(settings) as live:
        yield live


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with chromium() as (_, launched):
        yield launched


@pytest.fixture
def ui(browser: Browser, server: LiveServer) -> Iterator[Ui]:
    yield from new_ui(browser, server, viewport={"width": 1280, "height": 900})


def test_follow_an_album_check_it_pause_it_and_remove_it(ui: Ui, jm: JmDouble) -> None:
    page = ui.open()
    search(page, "100201")
    page.get_by_role("button", name="Followed Series", exact=True).click()
    dialog = page.get_by_role("dialog")
    dialog.get_by_role("button", name="Follow", exact=True).click()
    expect(page.get_by_role("alert")).to_contain_text("Following Followed Series")
    page.keyboard.press("Escape")

    page.get_by_role("tab", name="Subscriptions").click()
    subs = page.get_by_role("list", name="Subscriptions")
    item = subs.get_by_role("listitem").filter(has_text="Followed Series")
    expect(item).to_contain_text("Album · every 6 h · last check")
    expect(item).to_contain_text("0 new items last time")

    jm.add_chapter("100201", FakeChapter("100203", "Three", 1))
    item.get_by_role("button", name="Check now Followed Series").click()
    expect(page.locator("#subs-status")).to_have_text("Followed Series: 1 new item, 1 download started.")
    expect(ui.job(page, "Followed Series")).to_contain_text("ready", timeout=20_000)
    expect(item).to_contain_text("1 new item last time")

    item.get_by_role("button", name="Pause Followed Series").click()
    expect(item).to_contain_text("paused")
    item.get_by_role("button", name="Resume Followed Series").click()
    expect(item).to_contain_text("next ")
    item.get_by_role("button", name="Remove Followed Series").click()
    expect(subs.get_by_role("listitem")).to_have_count(0)
    expect(page.get_by_text("Nothing followed yet.")).to_be_visible()
