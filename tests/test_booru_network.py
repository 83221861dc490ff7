"""Where booru requests may go and what they leave behind: images only from the site's origin or its
configured image hosts (a canary server must hear nothing), one proxy for everything, no secret in a log."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from app.errors import NotFound
from app.sources.booru.hosts import HostPolicy
from app.sources.dataset import download_dataset
from tests.conftest import site_for
from tests.fakes.booru import make_posts
from tests.fakes.danbooru import DanbooruDouble
from tests.fakes.gelbooru import GelbooruDouble
from tests.fakes.gelbooru_v02 import GelbooruV02Double
from tests.fakes.network import Canary, CountingProxy


@pytest.fixture
def canary() -> Iterator[Canary]:
    with Canary() as server:
        yield server


def image_path(post: dict[str, object]) -> str:
    return f"/images/{post['directory']}/{post['md5']}.{post['_ext']}"


def test_host_rules_match_whole_labels_schemes_and_ports() -> None:
    policy = HostPolicy("https://gelbooru.com", ["img*.gelbooru.com", "http://127.0.0.1:8080"])
    allowed = ["https://gelbooru.com/x", "https://img3.gelbooru.com/images/a.png", "https://GELBOORU.com:443/x",
               "http://127.0.0.1:8080/a.png"]
    refused = ["http://gelbooru.com/x", "https://gelbooru.com:8443/x", "https://img3.gelbooru.com.evil.org/a",
               "https://evil.org/img3.gelbooru.com", "https://gelbooru.com@evil.org/", "https://u:p@gelbooru.com/x",
               "http://img3.gelbooru.com/a.png", "https://127.0.0.1:8080/a.png", "ftp://gelbooru.com/x",
               "//evil.org/x", "https://gelbooru.com\\@evil.org/", "https://x.img3.gelbooru.com/a"]
    assert [u for u in allowed if policy.resolve(u) is None] == []
    assert [u for u in refused if policy.resolve(u) is not None] == []
    assert str(policy.resolve("/images/a.png")) == "https://gelbooru.com/images/a.png"


async def test_foreign_image_urls_and_redirects_are_never_requested(canary: Canary, tmp_path: Path) -> None:
    with GelbooruDouble(make_posts(9)) as gb:
        port = gb.base_url.rsplit(":", 1)[1]
        foreign = [
            f"{canary.url}/images/a.png",  # same host, another port
            f"//127.0.0.1:{canary.port}/b.png",  # protocol-relative
            f"http://127.0.0.1:{port}@127.0.0.1:{canary.port}/c.png",  # user info naming the site
            f"ftp://127.0.0.1:{port}/d.png",
            f"http://localhost:{canary.port}/e.png",
        ]
        for post, url in zip(gb.posts, foreign, strict=False):
            post["_file_url"] = url
        redirected_away, redirected_home = gb.posts[5], gb.posts[6]
        gb.redirects[image_path(redirected_away)] = f"{canary.url}/stolen.png"
        gb.redirects["/moved/home.png"] = gb.base_url + image_path(redirected_home)
        redirected_home["_file_url"] = f"{gb.base_url}/moved/home.png"
        site = site_for(gb)
        result = await download_dataset(site, "1girl", tmp_path, max_images=9)
        await site.aclose()
    assert canary.seen == []
    assert (result.downloaded, result.unavailable, result.failed) == (3, 6, 0)
    refused = {f.post_id: f.error for f in result.files if f.status == "unavailable"}
    assert set(refused) == {p["id"] for p in gb.posts[:6]}
    assert "redirected" in (refused[redirected_away["id"]] or "")
    assert (tmp_path / f"{redirected_home['md5']}.png").exists()


async def test_configured_image_hosts_are_used_and_nothing_else(canary: Canary, tmp_path: Path) -> None:
    with GelbooruDouble(make_posts(3)) as gb, GelbooruDouble(gb.posts, require_referer=False) as cdn:
        for post in gb.posts:
            post["_file_url"] = cdn.base_url + image_path(post)
        without = site_for(gb)
        with pytest.raises(NotFound) as refused:
            await download_dataset(without, "1girl", tmp_path / "a", max_images=3)
        with_cdn = site_for(gb, image_hosts=[cdn.base_url])
        fetched = await download_dataset(with_cdn, "1girl", tmp_path / "b", max_images=3)
        for site in (without, with_cdn):
            await site.aclose()
        cdn_hits = cdn.hits("image")
    assert "None of the 3 Gelbooru posts" in refused.value.detail and "hosted elsewhere" in refused.value.detail
    assert (fetched.downloaded, fetched.unavailable) == (3, 0) and cdn_hits == 3


async def test_one_proxy_carries_every_request(tmp_path: Path) -> None:
    with GelbooruV02Double(make_posts(5)) as double, CountingProxy() as proxy:
        site = site_for(double, "safebooru", proxy=proxy.url)
        await download_dataset(site, "1girl", tmp_path, max_images=5)
        await site.aclose()
        host = double.base_url.removeprefix("http://")
        assert proxy.hosts[host] == double.hits("all") == 6  # one page, five images


async def test_without_the_setting_the_proxy_environment_is_honoured(tmp_path: Path,
                                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    with GelbooruV02Double(make_posts(2)) as double, CountingProxy() as proxy:
        for name in ("NO_PROXY", "no_proxy", "ALL_PROXY", "all_proxy", "HTTPS_PROXY", "https_proxy"):
            monkeypatch.delenv(name, raising=False)
        monkeypatch.setenv("HTTP_PROXY", proxy.url)
        site = site_for(double, "safebooru")
        await site.search_posts("1girl")
        await site.aclose()
        assert proxy.hosts[double.base_url.removeprefix("http://")] == 1


async def test_no_credential_reaches_a_log_line(caplog: pytest.LogCaptureFixture, tmp_path: Path) -> None:
    for name in ("", "httpx", "jmbooru"):  # other tests (the CLI) leave these loggers quieter
        caplog.set_level(logging.DEBUG, logger=name or None)
    secrets = ("GelSecretKey0123", "dan_login_name", "DanSecretKey0456")
    with GelbooruDouble(make_posts(3), api_key=secrets[0], user_id="777") as gb, \
            DanbooruDouble(make_posts(3), accounts={secrets[1]: (secrets[2], "member")}) as db:
        gelbooru = site_for(gb)
        danbooru = site_for(db, "danbooru", login=secrets[1], api_key=secrets[2])
        gb.fail_next(1, status=500)
        db.fail_next(1, status=500)
        for site in (gelbooru, danbooru):
            await download_dataset(site, "1girl", tmp_path / site.info.site, max_images=3)
            await site.aclose()
        async with httpx.AsyncClient() as plain:  # a URL with a key in it, through httpx's own logger
            await plain.get(f"{gb.base_url}/index.php?page=dapi&s=post&q=index&api_key={secrets[0]}&user_id=777")
    text = "\n".join(record.getMessage() for record in caplog.records)
    assert "HTTP Request: GET" in text and "status=500" in text  # the logs that would carry them were written
    assert [s for s in secrets if s in text] == []
    assert "api_key=***" in text
