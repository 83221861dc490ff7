"""The web page's issue-18 parts in a real browser: the booru preview applies the dataset's filters,
sensitive thumbnails are blurred, tags open with a tap, the grid never shows another search's posts,
the album's chapter picker, the JM id on job cards, the Jobs link on a phone, and plurals.

The browser, server and doubles are test_web.py's fixtures (one of each for this module).
"""

from __future__ import annotations

import re
from types import SimpleNamespace
from typing import Any

import httpx
from playwright.sync_api import Page, Request, Route, expect

from app.sources.captions import PostFilters
from tests import test_web
from tests.browser import saved_zip
from tests.conftest import LiveServer, wait_until
from tests.fakes.jm import FakeAlbum, JmDouble
from tests.test_web import Ui, search, state_of

# test_web.py's fixtures (a browser, the doubles, a live server, a desktop and a phone context),
# made this module's too: pytest finds fixtures among a module's names.
browser, gb, jm, server = test_web.browser, test_web.gb, test_web.jm, test_web.server
ui, phone = test_web.ui, test_web.phone

BLUR = "Blur explicit and questionable thumbnails"


def server_posts(server: LiveServer, tags: str) -> list[dict[str, Any]]:
    answer = httpx.get(f"{server.url}/v1/booru/gelbooru/posts", params={"tags": tags, "limit": 40})
    answer.raise_for_status()
    posts: list[dict[str, Any]] = answer.json()["posts"]
    return posts


def preview(page: Page, tags: str) -> None:
    if page.get_by_role("tab", name="Booru").get_attribute("aria-selected") != "true":
        page.get_by_role("tab", name="Booru").click()
    page.get_by_role("textbox", name="Tags").fill(tags)
    page.get_by_role("button", name="Preview posts").click()


def shown_ids(page: Page) -> list[int]:
    """The ids of the posts the grid shows (hidden ones are not in the accessibility tree)."""
    names = page.get_by_role("list", name="Posts").get_by_role("img").evaluate_all(
        "imgs => imgs.filter(i => i.checkVisibility()).map(i => i.alt)")
    return [int(name.removeprefix("Post ")) for name in names]


def test_booru_preview_keeps_what_the_dataset_filters_keep(ui: Ui, server: LiveServer) -> None:
    page = ui.open()
    preview(page, "1girl")
    posts = page.get_by_role("list", name="Posts").get_by_role("listitem")
    expect(posts).to_have_count(30)
    status = page.locator("#booru-status")
    expect(status).to_have_text("30 of 30 posts kept")

    page.get_by_text("Caption and filter options").click()
    page.get_by_role("checkbox", name="explicit", exact=True).uncheck()
    page.get_by_role("checkbox", name="questionable", exact=True).uncheck()
    page.get_by_label("Minimum score").fill("4")
    page.get_by_label("Blacklist").fill("cat_* , SMILE")  # a wildcard and a tag in another case
    # What the server's own rule keeps of the same posts, and what the page shows, are the same.
    rule = PostFilters(rating=["general", "sensitive"], min_score=4, blacklist="cat_* , SMILE")
    kept = [p["id"] for p in server_posts(server, "1girl") if rule.matches(SimpleNamespace(**p))]
    assert 0 < len(kept) < 30
    expect(posts).to_have_count(len(kept))
    assert shown_ids(page) == kept
    expect(status).to_have_text(f"{len(kept)} of 30 posts kept")

    # The dataset job with these filters downloads exactly the posts the preview kept.
    page.get_by_role("spinbutton", name="Images").fill("30")
    page.get_by_role("button", name="Download dataset").click()
    item = ui.job(page, "gelbooru: 1girl")
    expect(state_of(item)).to_have_text("ready", timeout=20_000)
    expect(item).to_contain_text(f"{len(kept)} / {len(kept)} files")

    page.get_by_label("Minimum score").fill("1000")
    expect(posts).to_have_count(0)
    expect(status).to_have_text("0 of 30 posts kept · the filters removed every post shown")


def test_explicit_and_questionable_thumbnails_are_blurred_until_turned_off(ui: Ui, server: LiveServer) -> None:
    by_rating = {p["rating"]: p["id"] for p in reversed(server_posts(server, "1girl id:<1004"))}
    assert set(by_rating) == {"general", "sensitive", "questionable", "explicit"}
    page = ui.open()
    preview(page, "1girl id:<1004")
    grid = page.get_by_role("list", name="Posts")
    expect(grid.get_by_role("listitem")).to_have_count(4)

    def blur_of(rating: str) -> str:
        image = grid.get_by_role("img", name=f"Post {by_rating[rating]}", exact=True)
        return str(image.evaluate("img => getComputedStyle(img).filter"))

    toggle = page.get_by_role("checkbox", name=BLUR)
    expect(toggle).to_be_checked()
    assert blur_of("explicit").startswith("blur(") and blur_of("questionable").startswith("blur(")
    assert blur_of("general") == "none" and blur_of("sensitive") == "none"
    grid.get_by_role("img", name=f"Post {by_rating['explicit']}", exact=True).click()  # this one only
    assert blur_of("explicit") == "none" and blur_of("questionable").startswith("blur(")
    grid.get_by_role("img", name=f"Post {by_rating['explicit']}", exact=True).click()
    assert blur_of("explicit").startswith("blur(")
    toggle.uncheck()
    assert blur_of("explicit") == "none" and blur_of("questionable") == "none"

    page.reload()  # the choice is remembered in this browser
    expect(page.get_by_role("checkbox", name=BLUR)).not_to_be_checked()
    preview(page, "1girl id:<1004")
    expect(grid.get_by_role("listitem")).to_have_count(4)
    assert blur_of("explicit") == "none"
    page.get_by_role("checkbox", name=BLUR).check()
    assert blur_of("explicit").startswith("blur(")


def test_a_posts_tags_open_with_a_tap_on_a_phone(phone: Ui, server: LiveServer) -> None:
    first = server_posts(server, "1girl")[0]
    page = phone.open()
    preview(page, "1girl")
    post = page.get_by_role("list", name="Posts").get_by_role("listitem").first
    expect(post.get_by_role("img")).to_have_accessible_name(f"Post {first['id']}")
    tags = post.locator(".post-tags p")
    expect(tags).to_be_hidden()
    post.get_by_text(f"{len(first['tags'])} tags", exact=True).tap()
    expect(tags).to_be_visible()
    expect(tags).to_have_text(" ".join(first["tags"]))
    box = tags.bounding_box()
    assert box is not None and box["x"] >= 0 and box["x"] + box["width"] <= 390
    assert int(page.evaluate("document.scrollingElement.scrollWidth")) <= 390


def test_the_grid_clears_when_the_tags_change_and_an_older_answer_is_dropped(ui: Ui) -> None:
    held: list[Route] = []
    page = ui.open(lambda p: p.route(re.compile(r"/v1/booru/gelbooru/posts\?tags=smile&"),
                                             lambda route: held.append(route)))
    preview(page, "1girl")
    grid = page.get_by_role("list", name="Posts").get_by_role("listitem")
    expect(grid).to_have_count(30)
    page.get_by_role("textbox", name="Tags").fill("1girl id:<1004")  # typed, not yet previewed
    expect(grid).to_have_count(0)
    expect(page.locator("#booru-status")).to_have_text("")
    expect(page.get_by_role("button", name="More posts")).to_be_hidden()
    page.get_by_role("button", name="Preview posts").click()
    expect(grid).to_have_count(4)

    # A slow search, then a newer one: the older answer, arriving last, must not replace the grid.
    ended: list[Request] = []
    page.on("requestfailed", lambda request: ended.append(request))
    page.on("requestfinished", lambda request: ended.append(request))
    preview(page, "smile")
    wait_until(lambda: held, timeout=10)
    preview(page, "1girl id:<1003")
    expect(grid).to_have_count(3)
    try:
        held[0].fulfill(json={"count": 30, "posts": []})  # as if the old search found nothing
    except Exception:  # noqa: BLE001 - the page already gave up on that request: also fine
        pass
    wait_until(lambda: any(r.url == held[0].request.url for r in ended), timeout=10)
    expect(grid).to_have_count(3)
    expect(page.locator("#booru-status")).to_have_text("3 of 3 posts kept")
    expect(page.get_by_role("textbox", name="Tags")).to_have_value("1girl id:<1003")


def test_the_album_view_downloads_only_the_checked_chapters(ui: Ui, server: LiveServer) -> None:
    page = ui.open()
    dialog = page.get_by_role("dialog")
    page.get_by_role("button", name="Scrambled Two Chapters", exact=True).click()
    chapters = dialog.get_by_role("list", name="Chapters")
    expect(chapters.get_by_role("checkbox")).to_have_count(2)
    for name in ("Part 1", "Part 2"):
        expect(chapters.get_by_role("checkbox", name=name)).to_be_checked()

    # None checked: nothing is sent, the page says what to do.
    dialog.get_by_role("button", name="Check or uncheck all").click()
    expect(chapters.get_by_role("checkbox", name="Part 1")).not_to_be_checked()
    dialog.get_by_role("button", name="Download album").click()
    expect(page.get_by_role("alert")).to_contain_text("Choose at least one chapter")
    page.get_by_role("button", name="Dismiss").click()

    chapters.get_by_role("checkbox", name="Part 2").check()
    with page.expect_request(re.compile(r"/v1/download/album/600001$")) as request:
        dialog.get_by_role("button", name="Download album").click()
    assert request.value.post_data_json["chapters"] == ["600002"]
    item = ui.job(page, "Scrambled Two Chapters · 1 of 2 chapters")
    expect(state_of(item)).to_have_text("ready", timeout=15_000)
    archive = saved_zip(page, item.get_by_role("link", name="Save"))
    assert len([n for n in archive.namelist() if n.endswith(".webp")]) == 4  # Part 2's pages only

    # Every chapter checked is the whole album: no "chapters" key, the same job as a card's Download.
    page.get_by_role("button", name="Scrambled Two Chapters", exact=True).click()
    expect(chapters.get_by_role("checkbox", name="Part 1")).to_be_checked()  # a fresh choice each time
    with page.expect_request(re.compile(r"/v1/download/album/600001$")) as request:
        dialog.get_by_role("button", name="Download album").click()
    assert "chapters" not in request.value.post_data_json
    # A one-chapter album has nothing to pick.
    page.get_by_role("button", name="Plain Album", exact=True).click()
    expect(dialog.get_by_role("list", name="Chapters").get_by_role("listitem")).to_have_count(1)
    expect(chapters.get_by_role("checkbox")).to_have_count(0)
    expect(dialog.get_by_role("button", name="Check or uncheck all")).to_be_hidden()


def test_job_cards_show_the_jm_id_also_after_a_reload(ui: Ui, jm: JmDouble) -> None:
    jm.add_album(FakeAlbum.single("100110", "Numbered Album", 2))
    page = ui.open()
    search(page, "100110").get_by_role("button", name="Download Numbered Album").click()
    item = ui.job(page, "Numbered Album")
    expect(item.locator(".job-aid")).to_have_text("JM100110")
    expect(state_of(item)).to_have_text("ready", timeout=15_000)
    page.reload()
    expect(ui.job(page, "Numbered Album").locator(".job-aid")).to_have_text("JM100110")
    # A job list without the id (kept by an older page) gets it from the server's job record.
    page.evaluate("""() => localStorage.setItem('jmbooru.jobs', JSON.stringify(
        JSON.parse(localStorage.getItem('jmbooru.jobs')).map(({aid, ...rest}) => rest)))""")
    page.reload()
    expect(ui.job(page, "Numbered Album").locator(".job-aid")).to_have_text("JM100110")


def test_on_a_phone_the_jobs_list_is_one_tap_away(phone: Ui, jm: JmDouble) -> None:
    jm.add_album(FakeAlbum.single("100111", "Far Away Album", 6))
    jm.set_latency(1.5, "/media/photos/100111/")
    page = phone.open()
    search(page, "100111").get_by_role("button", name="Download Far Away Album").click()
    link = page.get_by_role("link", name=re.compile(r"^Jobs"))
    expect(link).to_have_text("Jobs (1)")  # the count of downloads under way
    page.get_by_role("button", name="All", exact=True).click()  # a long list of albums to scroll
    albums = page.get_by_role("list", name="Albums").get_by_role("listitem")
    wait_until(lambda: albums.count() > 10)
    albums.nth(albums.count() // 2).scroll_into_view_if_needed()
    heading = page.get_by_role("heading", name="Jobs")
    expect(heading).not_to_be_in_viewport()
    expect(link).to_be_in_viewport()
    link.tap()
    expect(heading).to_be_in_viewport()
    expect(phone.job(page, "Far Away Album")).to_be_in_viewport()
    expect(state_of(phone.job(page, "Far Away Album"))).to_have_text("ready", timeout=20_000)
    expect(link).to_have_text("Jobs")
    assert int(page.evaluate("document.scrollingElement.scrollWidth")) <= 390


def test_sentences_count_in_the_right_number(ui: Ui, jm: JmDouble) -> None:
    jm.add_album(FakeAlbum.single("100112", "Lonely Album", 1, comment_total=1))
    page = ui.open()
    search(page, "100112")
    expect(page.locator("#jm-status")).to_have_text("1 album for “100112”")
    page.get_by_role("button", name="Lonely Album", exact=True).click()
    expect(page.locator("#comments-status")).to_have_text("1 comment")
    page.get_by_role("button", name="Download album").click()
    item = ui.job(page, "Lonely Album")
    expect(state_of(item)).to_have_text("ready", timeout=15_000)
    expect(item.locator(".job-meta")).to_contain_text("1 / 1 file ·")
    preview(page, "1girl id:<1001")
    expect(page.locator("#booru-status")).to_have_text("1 of 1 post kept")
    preview(page, "1girl id:<1003")
    expect(page.locator("#booru-status")).to_have_text("3 of 3 posts kept")
    expect(page.get_by_role("list", name="Posts").get_by_role("listitem").first.locator("summary")).to_have_text(
        re.compile(r"^\d+ tags$"))


def test_a_preview_asked_before_the_site_list_arrives_waits_for_it(ui: Ui) -> None:
    held: list[Route] = []
    page = ui.open(lambda p: p.route("**/v1/booru/sites", lambda route: held.append(route)))
    page.get_by_role("tab", name="Booru").click()
    page.get_by_role("textbox", name="Tags").fill("1girl id:<1002")
    page.get_by_role("button", name="Preview posts").click()  # the site list is not here yet
    wait_until(lambda: held, timeout=10)
    with page.expect_request(re.compile(r"/v1/booru/[^/]*/posts\?")) as request:
        held[0].continue_()
    assert "/v1/booru/gelbooru/posts?" in request.value.url
    expect(page.locator("#booru-status")).to_have_text("2 of 2 posts kept")
