"""The Gelbooru site against the loopback double: quirks, credentials, retries, paging, images."""

from __future__ import annotations

import hashlib
import socket
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import pytest

from app.errors import Unprocessable, UpstreamError, UpstreamTimeout, UpstreamUnavailable
from app.sources.booru.base import BooruSite, CredentialsError
from app.sources.booru.files import ImagePools
from app.sources.booru.gelbooru import parse_credentials
from tests.conftest import site_for
from tests.fakes.gelbooru import GelbooruDouble, make_post, make_posts


def client_for(gb: GelbooruDouble, **kwargs: object) -> BooruSite:
    return site_for(gb, "gelbooru", **kwargs)


@pytest.fixture
def gb() -> Iterator[GelbooruDouble]:
    with GelbooruDouble(make_posts(30)) as double:
        yield double


@pytest.fixture
async def client(gb: GelbooruDouble) -> AsyncIterator[BooruSite]:
    site = client_for(gb)
    yield site
    await site.aclose()


# --- wire format quirks ---


async def test_posts_are_parsed_with_unescaped_tags_and_typed_fields(gb: GelbooruDouble, client: BooruSite) -> None:
    gb.posts = [make_post(5, ["grabbing_another's_arm", "tom_&_jerry", "1girl"], score=7, rating="sensitive")]
    gb.posts[0].update(has_children="true", has_notes="false")
    gb.ints_as_strings = True

    page = await client.search_posts("1girl")

    assert page.count == 1
    post = page.posts[0]
    assert post.tags == ["1girl", "grabbing_another's_arm", "tom_&_jerry"]
    assert (post.id, post.score, post.width, post.height) == (5, 7, 8, 8)
    assert post.has_children is True and post.has_notes is False
    assert post.rating == "sensitive"
    assert post.file_url.startswith(gb.base_url + "/images/") and post.md5 in post.file_url


async def test_posts_with_missing_fields_get_defaults(gb: GelbooruDouble, client: BooruSite) -> None:
    gb.posts = [{"id": "9", "tags": "a&amp;b", "_raw": True}, {"_raw": True, "score": None, "width": "wide"}]

    page = await client.search_posts("")

    first, second = page.posts
    assert (first.id, first.md5, first.file_url, first.tags, first.has_children) == (9, "", "", ["a&b"], False)
    assert (second.id, second.score, second.width, second.tags) == (0, 0, 0, [])


async def test_zero_results_have_no_post_key_and_give_an_empty_page(gb: GelbooruDouble, client: BooruSite) -> None:
    page = await client.search_posts("no_such_tag")
    assert (page.count, page.posts) == (0, [])
    assert [p async for p in client.iter_posts("no_such_tag")] == []


async def test_single_object_instead_of_list(gb: GelbooruDouble, client: BooruSite) -> None:
    gb.single_object = True
    md5 = gb.posts[0]["md5"]
    page = await client.search_posts(f"md5:{md5}")
    assert [p.md5 for p in page.posts] == [md5]


async def test_query_has_one_page_param_and_limit_is_capped(gb: GelbooruDouble, client: BooruSite) -> None:
    page = await client.search_posts("1girl", page=1, limit=100)
    _, query, headers = gb.requests[-1]
    assert query["page"] == ["dapi"] and query["limit"] == ["100"] and query["pid"] == ["0"]
    assert query["json"] == ["1"] and query["api_key"] == ["testkey"] and query["user_id"] == ["12345"]
    assert "jmbooru" in headers.get("User-Agent", "")
    assert len(page.posts) == 30


# --- credentials ---


def test_pasted_query_string_is_split_into_key_and_user_id() -> None:
    assert parse_credentials("&api_key=abc123&user_id=42", "") == ("abc123", "42")
    assert parse_credentials("", "&api_key=abc123&user_id=42") == ("abc123", "42")
    assert parse_credentials("  abc123 ", " 42 ") == ("abc123", "42")


async def test_pasted_query_string_works_against_the_site(gb: GelbooruDouble) -> None:
    c = client_for(gb, api_key=f"&api_key={gb.api_key}&user_id={gb.user_id}", user_id="")
    assert (await c.search_posts("1girl")).count == 30
    await c.aclose()


def test_user_name_instead_of_numeric_id_is_unprocessable() -> None:
    with pytest.raises(Unprocessable) as err:
        parse_credentials("abc123", "SomeUser")
    assert "numeric user id" in err.value.detail and "--" not in err.value.detail  # no CLI flags in sources


async def test_client_with_a_user_name_explains_it_before_any_request(gb: GelbooruDouble) -> None:
    c = client_for(gb, api_key="abc123", user_id="SomeUser")
    with pytest.raises(CredentialsError) as err:  # 502: the server's settings are wrong
        await c.search_posts("1girl")
    assert "numeric user id" in err.value.detail
    assert "JMBOORU_GELBOORU_USER_ID" in err.value.detail and "--user-id" not in err.value.detail
    assert gb.hits("api") == 0


async def test_missing_credentials_are_a_502_naming_the_settings(gb: GelbooruDouble) -> None:
    c = client_for(gb, api_key="", user_id="")
    with pytest.raises(CredentialsError) as err:
        await c.search_posts("1girl")
    assert err.value.status_code == 502
    assert "JMBOORU_GELBOORU_API_KEY" in err.value.detail and "--api-key" not in err.value.detail
    assert gb.hits("api") == 0


async def test_refused_credentials_401_is_a_502_sentence_without_upstream_text(gb: GelbooruDouble) -> None:
    c = client_for(gb, api_key="wrongkey")
    with pytest.raises(CredentialsError) as err:
        await c.search_posts("1girl")
    assert err.value.status_code == 502
    assert "JMBOORU_GELBOORU_USER_ID" in err.value.detail and "Unauthorized" not in err.value.detail
    assert gb.hits("api") == 1  # a 401 is not retried


# --- retries and errors ---


async def test_429_retry_after_is_honoured_then_succeeds(gb: GelbooruDouble, client: BooruSite) -> None:
    gb.rate_limit_next(1, retry_after=1)
    started = time.monotonic()
    page = await client.search_posts("1girl")
    assert time.monotonic() - started >= 0.95
    assert page.count == 30 and gb.hits("post") == 2


async def test_500s_are_retried_with_backoff(gb: GelbooruDouble, client: BooruSite) -> None:
    gb.fail_next(2, status=500)
    assert (await client.search_posts("1girl")).count == 30
    assert gb.hits("post") == 3


async def test_persistent_500_gives_up_after_bounded_attempts(gb: GelbooruDouble, client: BooruSite) -> None:
    gb.fail_next(10, status=500)
    with pytest.raises(UpstreamError) as err:
        await client.search_posts("1girl")
    assert err.value.status_code == 502 and "server error" not in err.value.detail
    assert gb.hits("post") == 4


async def test_dropped_connection_is_retried(gb: GelbooruDouble, client: BooruSite) -> None:
    gb.drop_next(1)
    assert (await client.search_posts("1girl")).count == 30
    assert gb.hits("post") == 2


async def test_unreachable_site_is_503() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    c = site_for(None, url=f"http://127.0.0.1:{port}", api_key="k", user_id="1", max_attempts=2)
    with pytest.raises(UpstreamUnavailable) as err:
        await c.search_posts("1girl")
    assert str(port) not in err.value.detail


async def test_slow_site_is_504(gb: GelbooruDouble) -> None:
    gb.latency = 0.5
    c = client_for(gb, timeout=0.1, max_attempts=2)
    with pytest.raises(UpstreamTimeout):
        await c.search_posts("1girl")


async def test_xml_refusal_is_a_502_with_our_own_sentence(gb: GelbooruDouble, client: BooruSite) -> None:
    gb.xml_error("Search error: API limited due to abuse.")
    with pytest.raises(UpstreamError) as err:
        await client.search_posts("1girl")
    assert err.value.status_code == 502
    assert "daily" in err.value.detail and "abuse" not in err.value.detail


async def test_cloudflare_403_page_is_explained(gb: GelbooruDouble, client: BooruSite) -> None:
    gb.cloudflare()
    with pytest.raises(UpstreamError) as err:
        await client.search_posts("1girl")
    assert err.value.status_code == 502 and "Cloudflare" in err.value.detail
    assert not isinstance(err.value, CredentialsError)


async def test_rate_limit_spaces_api_requests(gb: GelbooruDouble) -> None:
    c = client_for(gb, rate=20)
    started = time.monotonic()
    for _ in range(5):
        await c.search_posts("1girl", limit=1)
    assert time.monotonic() - started >= 0.19  # 4 intervals of 50 ms


# --- paging ---


async def test_iter_posts_pages_by_id_past_the_depth_limit(gb: GelbooruDouble) -> None:
    gb.posts = make_posts(450, tags_pool=["x"])
    gb.depth_limit = 200
    c = client_for(gb, max_offset=None)  # the client does not know the limit: an empty page reveals it
    ids = [p.id async for p in c.iter_posts("1girl")]
    assert ids == sorted((p["id"] for p in gb.posts), reverse=True)
    by_id = [q for _, q, _ in gb.requests if "id:<" in q.get("tags", [""])[0]]
    assert by_id and all("pid" not in q for q in by_id)


async def test_iter_posts_switches_to_id_before_the_known_depth_limit(gb: GelbooruDouble) -> None:
    gb.posts = make_posts(450, tags_pool=["x"])
    gb.depth_limit = 200
    c = client_for(gb, max_offset=200)
    ids = [p.id async for p in c.iter_posts("1girl")]
    assert len(ids) == len(set(ids)) == 450
    # pids 0 and 1, then id:< pages of 100 (3, the last one short): no wasted empty page
    assert gb.hits("post") == 5


async def test_iter_posts_stops_at_max_posts(gb: GelbooruDouble, client: BooruSite) -> None:
    gb.posts = make_posts(250, tags_pool=["x"])
    posts = [p async for p in client.iter_posts("1girl", max_posts=120)]
    assert len(posts) == 120 and gb.hits("post") == 2


# --- tags ---


async def test_tag_categories_batch_cache_and_unescape(gb: GelbooruDouble, client: BooruSite) -> None:
    names = ["hifumi_(blue_archive)", "blue_archive", "tom_&_jerry", "artist_name", "highres", "smile"]
    names += [f"unknown_{i}" for i in range(150)]
    categories = await client.tag_categories(names)
    assert categories == {
        "hifumi_(blue_archive)": "character", "blue_archive": "copyright", "tom_&_jerry": "copyright",
        "artist_name": "artist", "highres": "metadata", "smile": "general",
    }
    assert gb.hits("tag") == 2  # 156 names in batches of 100
    await client.tag_categories(names)
    assert gb.hits("tag") == 2  # cached, unknown names included


# --- images ---


async def test_images_are_fetched_with_referer_and_verified(gb: GelbooruDouble, client: BooruSite, tmp_path: Path,
                                                            image_pools: ImagePools) -> None:
    post = (await client.search_posts("1girl", limit=1)).posts[0]
    result = await client.download_image(post.file_url, tmp_path / "x.part", image_pools.files)
    data = (tmp_path / "x.part").read_bytes()
    assert result.md5 == post.md5 == hashlib.md5(data).hexdigest() and result.size == len(data)
    referers = [h.get("Referer") for path, _, h in gb.requests if path.startswith("/images/")]
    assert referers == [gb.base_url + "/"]
    async with httpx.AsyncClient() as raw:  # the double really does insist on it
        assert (await raw.get(post.file_url)).status_code == 403


async def test_image_5xx_is_retried_and_404_is_not(gb: GelbooruDouble, client: BooruSite, tmp_path: Path,
                                                   image_pools: ImagePools) -> None:
    post = (await client.search_posts("1girl", limit=1)).posts[0]
    gb.fail_next(1, status=503, kind="image")
    assert (await client.download_image(post.file_url, tmp_path / "a", image_pools.files)).md5 == post.md5
    assert gb.hits("image") == 2
    with pytest.raises(UpstreamError) as err:
        await client.download_image(gb.base_url + "/images/00/00/" + "0" * 32 + ".png", tmp_path / "b",
                                    image_pools.files)
    assert "404" in err.value.detail and gb.hits("image") == 3
