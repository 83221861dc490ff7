"""Booru posts whose file or preview address is no usable URL (issue 19, item 6): listed with
``file_url: null``, a preview of one is a 4xx sentence, and a dataset job keeps the good posts."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from app.config import Settings
from app.sources.booru.hosts import HostPolicy
from tests.conftest import BOORU_URLS, LiveServer, app_client, make_settings
from tests.fakes.booru import BooruDouble, make_posts
from tests.fakes.danbooru import DanbooruDouble
from tests.fakes.gelbooru import GelbooruDouble
from tests.fakes.gelbooru_v02 import GelbooruV02Double
from tests.fakes.moebooru import MoebooruDouble
from tests.wsclient import follow

FAMILIES = [("gelbooru", GelbooruDouble), ("safebooru", GelbooruV02Double), ("danbooru", DanbooruDouble),
            ("yandere", MoebooruDouble)]


def settings_for(tmp_path: Path, site: str, double: BooruDouble) -> Settings:
    return make_settings(tmp_path, **{**BOORU_URLS, f"{site}_url": double.base_url, f"{site}_api_rate": 1000},
                         gelbooru_api_key="testkey", gelbooru_user_id="12345")


def test_the_host_policy_refuses_every_hostile_form_without_raising() -> None:
    with GelbooruDouble() as double:
        policy = HostPolicy(double.base_url)
        hostile = double.hostile_urls()
        assert policy.resolve(f"{double.base_url}/images/good.png") is not None
        for raw in hostile:
            assert policy.resolve(raw) is None, raw
        # A URL httpx parses but whose host idna cannot decode: allows() answers, never raises.
        assert policy.allows(httpx.URL("https://xn--a-.example/x.png")) is False


@pytest.mark.parametrize(("site", "double_type"), FAMILIES)
async def test_posts_with_unusable_urls_are_listed_without_a_file(tmp_path: Path, site: str,
                                                                  double_type: type[BooruDouble]) -> None:
    posts = make_posts(8)
    with double_type(posts) as double:
        hostile = double.hostile_urls()
        for post, url in zip(posts, hostile, strict=False):
            post["_file_url"] = url
        base_url = double.base_url
        async with app_client(settings_for(tmp_path, site, double)) as api:
            response = await api.get(f"/v1/booru/{site}/posts", params={"tags": "1girl", "limit": 20})
    assert response.status_code == 200, response.text
    by_md5 = {p["md5"]: p for p in response.json()["posts"]}
    for post in posts[:len(hostile)]:
        if post["md5"] in by_md5:  # listed (or left out): never with the hostile address
            assert by_md5[post["md5"]]["file_url"] is None, (post["_file_url"], by_md5[post["md5"]])
    for post in posts[len(hostile):]:
        assert by_md5[post["md5"]]["file_url"].startswith(base_url)


async def test_a_preview_of_an_unusable_url_is_a_400_sentence(tmp_path: Path) -> None:
    with GelbooruDouble(make_posts(2)) as double:
        async with app_client(settings_for(tmp_path, "gelbooru", double)) as api:
            hostile = double.hostile_urls()
            answers = [await api.get("/v1/booru/gelbooru/preview", params={"url": url}) for url in hostile]
        fetched = [path for path, _, _ in double.requests]
    for url, answer in zip(hostile, answers, strict=True):
        assert answer.status_code == 400, (url, answer.status_code, answer.text)
        assert answer.headers["content-type"] == "application/json"
        assert "image hosts" in answer.json()["detail"]
    assert fetched == []  # nothing was requested for any of them


async def test_a_dataset_with_unusable_urls_ends_ready_with_the_good_posts(tmp_path: Path) -> None:
    posts = make_posts(10)
    with GelbooruDouble(posts) as double:
        hostile = double.hostile_urls()
        for post, url in zip(posts, hostile, strict=False):
            post["_file_url"] = url
        settings = settings_for(tmp_path, "gelbooru", double)
        with LiveServer(settings) as live:
            async with httpx.AsyncClient(base_url=live.url) as http:
                started = await http.post("/v1/download/booru/gelbooru", json={"tags": "1girl", "max_images": 10})
                assert started.status_code == 202, started.text
                frames = await follow(f"{live.ws_url}/ws/jobs/{started.json()['job_id']}")
    final = frames[-1]
    good = len(posts) - len(hostile)
    assert final["event"] == "download_ready", final
    assert final["message"].startswith(f"{good} images with captions are ready."), final["message"]
    assert f"{len(hostile)} posts had no file to fetch" in final["message"], final["message"]
