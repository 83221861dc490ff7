"""Take the web page screenshots shown in the README (docs/web-*.jpg).

    .venv/bin/python docs/make_screenshots.py

Runs the server against the loopback JM and Gelbooru doubles (nothing leaves 127.0.0.1) and
Debian's Chromium (``apt-get install chromium``; ``fonts-noto-cjk`` too, or the doubles' Japanese
titles show as boxes). Desktop is 1280x800, phone 390x844; light and dark follow the system
setting that Chromium is told to emulate.
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from playwright.sync_api import Browser, Page, expect  # noqa: E402

from tests.browser import chromium  # noqa: E402
from tests.conftest import LiveServer, make_settings  # noqa: E402
from tests.fakes.gelbooru import GelbooruDouble, make_posts  # noqa: E402
from tests.fakes.jm import FakeAlbum, JmDouble  # noqa: E402

DOCS = REPO / "docs"


def search(page: Page, query: str) -> None:
    page.get_by_role("searchbox", name="Search JM").fill(query)
    page.get_by_role("searchbox", name="Search JM").press("Enter")
    expect(page.get_by_role("list", name="Albums").get_by_role("listitem").first).to_be_visible()


def start_jobs(page: Page, jm: JmDouble) -> None:
    """A ready album, a failed one and one still running, as a user would have them."""
    search(page, "100001")
    page.get_by_role("button", name="Download Plain Album").click()
    expect(page.get_by_role("list", name="Jobs").locator(".job-state").first).to_have_text("ready", timeout=15_000)
    jm.fail("/media/photos/100011/", status=503)
    search(page, "100011")
    page.get_by_role("button", name="Download Filler Comedy 1").click()
    expect(page.get_by_role("list", name="Jobs").locator(".job-state").first).to_have_text("failed", timeout=30_000)
    jm.set_latency(1.5, "/media/photos/190001/")
    search(page, "190001")
    page.get_by_role("button", name="Download Long Album").click()
    expect(page.get_by_role("list", name="Jobs").get_by_role("progressbar").first).to_have_attribute(
        "value", "8", timeout=15_000)


def shoot(browser: Browser, server: LiveServer, jm: JmDouble, *, phone: bool, scheme: str, view: str) -> None:
    size = {"width": 390, "height": 844} if phone else {"width": 1280, "height": 800}
    context = browser.new_context(base_url=server.url, viewport=size, color_scheme=scheme,  # type: ignore[arg-type]
                                  is_mobile=phone, has_touch=phone)
    page = context.new_page()
    page.goto("/")
    expect(page.locator("html[data-ready]")).to_have_count(1)
    if view == "jm":
        start_jobs(page, jm)
        page.get_by_role("button", name="Week", exact=True).click()
        expect(page.get_by_role("list", name="Albums").get_by_role("listitem")).to_have_count(17)
        page.evaluate("document.activeElement.blur()")
    elif view == "album":
        page.get_by_role("button", name="Scrambled Two Chapters", exact=True).click()
        expect(page.locator("#album-comments > li")).to_have_count(10)
    elif view == "booru":
        page.get_by_role("tab", name="Booru").click()
        page.get_by_role("textbox", name="Tags").fill("1girl solo")
        page.get_by_role("button", name="Preview posts").click()
        expect(page.get_by_role("list", name="Posts").get_by_role("listitem").first).to_be_visible()
        page.wait_for_load_state("networkidle")
    elif view == "jobs":
        start_jobs(page, jm)
        page.get_by_role("link", name="Jobs").click()
    page.screenshot(path=str(DOCS / f"web-{'phone' if phone else 'desktop'}-{scheme}.jpg"), type="jpeg", quality=82)
    context.close()
    jm.clear_faults()


def main() -> None:
    albums = [FakeAlbum.single("190001", "Long Album", 40, authors=["Lee"], tags=["long"])]
    posts = make_posts(40, image_bytes=60_000, base_tags=("1girl", "solo"))
    with JmDouble() as jm, GelbooruDouble(posts) as gb, chromium() as (_, browser):
        for album in albums:
            jm.add_album(album)
        shots = [(False, "light", "jm"), (False, "dark", "album"), (True, "light", "booru"), (True, "dark", "jobs")]
        for phone, scheme, view in shots:
            with tempfile.TemporaryDirectory() as data:
                settings = make_settings(Path(data), jm, gelbooru_url=gb.base_url, gelbooru_api_key=gb.api_key,
                                         gelbooru_user_id=gb.user_id, gelbooru_api_rate=100, jm_retry_times=0)
                with LiveServer(settings) as server:
                    shoot(browser, server, jm, phone=phone, scheme=scheme, view=view)
                    print(f"docs/web-{'phone' if phone else 'desktop'}-{scheme}.jpg ({view})")


if __name__ == "__main__":
    main()
