"""Each booru family against its loopback double: wire formats, paging, ratings, categories and quirks."""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from app.errors import Unprocessable, UpstreamError
from app.sources.booru.base import CredentialsError
from app.sources.booru.danbooru import split_search
from app.sources.booru.files import ImagePools
from app.sources.dataset import download_dataset
from tests.conftest import site_for
from tests.fakes.booru import make_post, make_posts
from tests.fakes.danbooru import DanbooruDouble
from tests.fakes.gelbooru_v02 import GelbooruV02Double
from tests.fakes.moebooru import MoebooruDouble


def names(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


TAGS = ["1girl", "hifumi_(blue_archive)", "blue_archive", "tom_&_jerry", "highres", "grabbing_another's_arm"]


@pytest.fixture
def safebooru() -> Iterator[GelbooruV02Double]:
    posts = make_posts(25)
    posts.append(make_post(5000, TAGS, rating="general", score=3))
    with GelbooruV02Double(posts) as double:
        yield double


@pytest.fixture
def danbooru() -> Iterator[DanbooruDouble]:
    posts = make_posts(25)
    posts.append(make_post(5000, TAGS, rating="sensitive", score=3))
    with DanbooruDouble(posts, accounts={"alice": ("DanKey0123", "member"), "goldie": ("GoldKey0123", "gold")}) as d:
        yield d


@pytest.fixture
def yandere() -> Iterator[MoebooruDouble]:
    posts = make_posts(25)
    posts.append(make_post(5000, TAGS, rating="general", score=3))
    with MoebooruDouble(posts) as double:
        yield double


# --- every family: the shared shape ---


@pytest.mark.parametrize(("fixture", "site", "newest_rating", "counts"), [
    ("safebooru", "safebooru", "general", False),
    ("danbooru", "danbooru", "sensitive", True),
    ("yandere", "yandere", "general", False),
    ("yandere", "konachan", "general", False),
])
async def test_posts_pages_are_one_based_newest_first_with_plain_tags(
    request: pytest.FixtureRequest, fixture: str, site: str, newest_rating: str, counts: bool
) -> None:
    double = request.getfixturevalue(fixture)
    booru = site_for(double, site)
    first = await booru.search_posts("1girl", page=1, limit=10)
    second = await booru.search_posts("1girl", page=2, limit=10)
    await booru.aclose()

    newest = first.posts[0]
    assert newest.id == 5000 and newest.rating == newest_rating and newest.score == 3
    assert sorted(newest.tags) == sorted(TAGS)  # HTML entities decoded, nothing else changed
    assert newest.md5 == double.posts[-1]["md5"] and newest.file_url.startswith(double.base_url)
    assert [p.id for p in first.posts] == [5000, *range(1024, 1015, -1)]
    assert [p.id for p in second.posts] == list(range(1015, 1005, -1))
    assert first.count == (26 if counts else None)


# --- Gelbooru 0.2 ---


async def test_v02_bare_array_hash_built_file_url_and_empty_body(safebooru: GelbooruV02Double, tmp_path: Path,
                                                                 image_pools: ImagePools) -> None:
    booru = site_for(safebooru, "safebooru")
    post = (await booru.search_posts("hifumi_(blue_archive)")).posts[0]
    raw = safebooru.posts[-1]
    assert post.md5 == raw["md5"]
    assert post.file_url == f"{safebooru.base_url}/images/{raw['directory']}/{raw['image']}"
    assert (await booru.download_image(post.file_url, tmp_path / "x", image_pools.files)).md5 == post.md5
    empty = await booru.search_posts("no_such_tag")
    assert (empty.count, empty.posts) == (None, [])
    assert "json" in safebooru.requests[-1][1]  # asked for JSON, got a zero-byte body
    await booru.aclose()


async def test_v02_categories_come_from_the_xml_tag_api(safebooru: GelbooruV02Double) -> None:
    booru = site_for(safebooru, "safebooru")
    categories = await booru.tag_categories(TAGS + ["unknown_tag"])
    await booru.aclose()
    assert categories == {"1girl": "general", "hifumi_(blue_archive)": "character", "blue_archive": "copyright",
                          "tom_&_jerry": "copyright", "highres": "metadata", "grabbing_another's_arm": "general"}
    assert safebooru.hits("tag") == 1


# --- Danbooru ---


def test_danbooru_sends_two_plain_tags_and_keeps_the_rest_for_itself() -> None:
    sent, local = split_search("rating:g 1girl -comic solo ~cat_ears ~dog_ears order:score smile*", 2)
    assert sent == "rating:g order:score 1girl solo"
    assert (local.required, local.excluded, local.any_of) == (("smile*",), ("comic",), ("cat_ears", "dog_ears"))
    assert split_search("1girl solo rating:e id:<5", 2) == ("1girl solo rating:e id:<5", split_search("", 2)[1])


async def test_danbooru_three_tags_are_searched_two_and_filtered_here(danbooru: DanbooruDouble) -> None:
    danbooru.posts = make_posts(30, tags_pool=["solo", "smile", "cat_ears", "open_mouth", "long_hair"])
    booru = site_for(danbooru, "danbooru")
    page = await booru.search_posts("1girl solo -smile", limit=40)
    ids = [p.id async for p in booru.iter_posts("1girl solo cat_ears")]
    await booru.aclose()

    def expected(tags_in: set[str], tags_out: set[str]) -> list[int]:
        return sorted((p["id"] for p in danbooru.posts if tags_in <= set(p["tags"].split())
                       and not tags_out & set(p["tags"].split())), reverse=True)

    assert [p.id for p in page.posts] == expected({"1girl", "solo"}, {"smile"}) and page.count is None
    assert ids == expected({"1girl", "solo", "cat_ears"}, set())
    sent = [q["tags"][0] for path, q, _ in danbooru.requests if path.startswith("/posts.json")]
    assert sent == ["1girl solo", "1girl solo"]  # never more than 2: the double would answer 422


async def test_danbooru_gold_accounts_send_more_tags(danbooru: DanbooruDouble) -> None:
    booru = site_for(danbooru, "danbooru", login="goldie", api_key="GoldKey0123", tag_limit=6)
    page = await booru.search_posts("1girl tom_&_jerry hifumi_(blue_archive)", limit=5)
    await booru.aclose()
    assert [p.id for p in page.posts] == [5000] and page.count == 1
    assert {q["tags"][0] for _, q, _ in danbooru.requests} == {"1girl tom_&_jerry hifumi_(blue_archive)"}


async def test_danbooru_too_many_tags_for_the_account_is_a_sentence(danbooru: DanbooruDouble) -> None:
    booru = site_for(danbooru, "danbooru", tag_limit=6)  # anonymous, but told it may send 6
    with pytest.raises(UpstreamError) as err:
        await booru.search_posts("1girl blue_archive highres")
    await booru.aclose()
    assert "JMBOORU_DANBOORU_TAG_LIMIT" in err.value.detail and "Upgrade" not in err.value.detail


async def test_danbooru_pages_by_id_and_refuses_numbered_pages_past_1000(danbooru: DanbooruDouble) -> None:
    danbooru.posts = make_posts(450, tags_pool=["x"])
    booru = site_for(danbooru, "danbooru", page_size=200)
    ids = [p.id async for p in booru.iter_posts("1girl")]
    pages = [q["page"][0] for path, q, _ in danbooru.requests if path.startswith("/posts.json")]
    assert ids == sorted((p["id"] for p in danbooru.posts), reverse=True)
    assert pages == ["1", "b1250", "b1050"]
    with pytest.raises(Unprocessable) as err:
        booru.check_page(1001, 20)
    assert "1000" in err.value.detail
    with pytest.raises(Unprocessable):  # the site's own 410, should a caller skip the check
        await booru.search_posts("1girl", page=1001)
    await booru.aclose()


async def test_danbooru_restricted_posts_have_no_file_and_are_skipped_and_counted(
    danbooru: DanbooruDouble, tmp_path: Path
) -> None:
    for post in danbooru.posts[-3:]:
        post["_restricted"] = True
    booru = site_for(danbooru, "danbooru")
    restricted = (await booru.search_posts("1girl", limit=1)).posts[0]
    assert (restricted.md5, restricted.file_url) == ("", "")
    result = await download_dataset(booru, "1girl", tmp_path, max_images=5)
    await booru.aclose()
    assert (result.downloaded, result.unavailable, result.failed) == (5, 3, 0)  # still the 5 asked for
    assert danbooru.hits("image") == 5


async def test_danbooru_categories_come_with_each_post(danbooru: DanbooruDouble) -> None:
    booru = site_for(danbooru, "danbooru")
    post = (await booru.search_posts("hifumi_(blue_archive)")).posts[0]
    await booru.aclose()
    assert post.categories == {"1girl": "general", "hifumi_(blue_archive)": "character", "blue_archive": "copyright",
                               "tom_&_jerry": "copyright", "highres": "metadata", "grabbing_another's_arm": "general"}
    assert danbooru.hits("tag") == 0


async def test_danbooru_credentials_go_as_http_basic_and_say_who_runs_the_tool(danbooru: DanbooruDouble) -> None:
    booru = site_for(danbooru, "danbooru", login="alice", api_key="DanKey0123")
    await booru.search_posts("1girl", limit=1)
    await booru.aclose()
    path, query, headers = danbooru.requests[0]
    assert "login" not in query and "api_key" not in query and "DanKey0123" not in path
    assert base64.b64decode(headers["Authorization"].split()[1]) == b"alice:DanKey0123"
    assert headers["User-Agent"].startswith("jmbooru/") and "alice" in headers["User-Agent"]


async def test_danbooru_refused_key_names_the_settings(danbooru: DanbooruDouble) -> None:
    half = site_for(danbooru, "danbooru", login="alice", api_key="")
    with pytest.raises(CredentialsError) as half_err:
        await half.search_posts("1girl")
    assert danbooru.hits("all") == 0  # not even asked
    booru = site_for(danbooru, "danbooru", login="alice", api_key="wrong")
    with pytest.raises(CredentialsError) as err:
        await booru.search_posts("1girl")
    await booru.aclose()
    await half.aclose()
    assert err.value.status_code == 502 and "Invalid API key" not in err.value.detail
    assert "JMBOORU_DANBOORU_LOGIN" in err.value.detail and "JMBOORU_DANBOORU_API_KEY" in err.value.detail
    assert "JMBOORU_DANBOORU_API_KEY" in half_err.value.detail


async def test_danbooru_cloudflare_refuses_library_user_agents_but_not_ours(danbooru: DanbooruDouble) -> None:
    async with httpx.AsyncClient() as plain:  # httpx's own User-Agent, on the API and on images alike
        api = await plain.get(f"{danbooru.base_url}/posts.json")
        image = await plain.get(f"{danbooru.base_url}/original/aa/bb/x.png")
    assert api.status_code == image.status_code == 403 and "Just a moment" in api.text
    ours = site_for(danbooru, "danbooru")
    assert len((await ours.search_posts("1girl")).posts) == 26
    disguised = site_for(danbooru, "danbooru", user_agent="python-httpx/0.28.1")
    with pytest.raises(UpstreamError) as err:
        await disguised.search_posts("1girl")
    await ours.aclose()
    await disguised.aclose()
    assert "Cloudflare" in err.value.detail and "JMBOORU_USER_AGENT" in err.value.detail


# --- Moebooru ---


async def test_moebooru_md5_and_extension_come_from_fields_not_the_file_name(yandere: MoebooruDouble, tmp_path: Path) -> None:
    yandere.posts = [make_post(7, ["1girl", "cat_ears"], ext="png")]
    booru = site_for(yandere, "yandere")
    result = await download_dataset(booru, "1girl", tmp_path, max_images=1)
    await booru.aclose()
    md5 = yandere.posts[0]["md5"]
    image_path = next(p for p, _, _ in yandere.requests if p.startswith("/image/"))
    assert md5 not in image_path.rsplit("/", 1)[-1] and "yande.re%207%20" in image_path
    assert result.downloaded == 1 and names(tmp_path) == [f"{md5}.png", f"{md5}.txt"]
    assert hashlib.md5((tmp_path / f"{md5}.png").read_bytes()).hexdigest() == md5
    assert yandere.hits("/post.json") == 1 and not any(p.startswith("/jpeg/") for p, _, _ in yandere.requests)


async def test_moebooru_deleted_posts_are_skipped_and_times_are_iso(yandere: MoebooruDouble, tmp_path: Path) -> None:
    yandere.posts[-1]["_deleted"] = True
    booru = site_for(yandere, "yandere")
    newest = (await booru.search_posts("1girl", limit=1)).posts[0]
    result = await download_dataset(booru, "1girl", tmp_path, max_images=3)
    await booru.aclose()
    assert newest.status == "deleted" and newest.file_url == ""
    assert newest.created_at.startswith("2026-") and newest.created_at.endswith("+00:00")
    assert (result.downloaded, result.unavailable) == (3, 1)


async def test_moebooru_tag_lookup_picks_the_exact_name_among_substring_matches(yandere: MoebooruDouble) -> None:
    yandere.tag_types.update({"very_long_hair": 0, "long_hair_girl_(artist)": 1, "long_hair": 3})
    booru = site_for(yandere, "yandere")
    categories = await booru.tag_categories(["long_hair", "hifumi_(blue_archive)", "nonexistent"])
    again = await booru.tag_categories(["long_hair"])
    await booru.aclose()
    assert categories == {"long_hair": "copyright", "hifumi_(blue_archive)": "character"}
    assert again == {"long_hair": "copyright"} and yandere.hits("tag") == 3  # one per new name, then cached


async def test_moebooru_type_numbers_differ_per_site(yandere: MoebooruDouble) -> None:
    yandere.tag_types.update({"some_circle": 5})
    sites = [site_for(yandere, name) for name in ("yandere", "konachan")]
    got = [await s.tag_categories(["some_circle"]) for s in sites]
    for s in sites:
        await s.aclose()
    assert got == [{"some_circle": "artist"}, {"some_circle": "metadata"}]  # yande.re circle, Konachan style


async def test_danbooru_counts_once_per_search_and_bounds_local_filtering(danbooru: DanbooruDouble) -> None:
    danbooru.posts = make_posts(300, tags_pool=["solo", "smile"])
    booru = site_for(danbooru, "danbooru", page_size=100)
    pages = [await booru.search_posts("1girl", page=n, limit=10) for n in (1, 2, 3)]
    rare = [p async for p in booru.iter_posts("1girl solo no_post_has_this", max_posts=150)]
    await booru.aclose()
    assert [p.count for p in pages] == [300, 300, 300] and danbooru.hits("count") == 1
    assert rare == [] and danbooru.hits("post") == 3 + 2  # 150 posts looked at: two pages of 100
