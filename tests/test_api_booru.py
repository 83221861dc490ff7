"""GET /v1/booru/{site}/posts over ASGITransport, against the Gelbooru double."""

from __future__ import annotations

import socket
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI

from app.api import booru
from app.api.errors import install_error_handlers
from app.config import Settings
from app.main import create_app
from app.sources.booru.base import BooruSite
from tests.conftest import BOORU_URLS, site_for
from tests.fakes.gelbooru import GelbooruDouble, make_post, make_posts


@pytest.fixture
def gb() -> Iterator[GelbooruDouble]:
    posts = make_posts(60)
    posts.append(make_post(9000, ["1girl", "grabbing_another's_arm", "tom_&_jerry"], score=42, rating="sensitive"))
    with GelbooruDouble(posts) as double:
        yield double


def booru_app(*sites: BooruSite) -> FastAPI:
    app = FastAPI()
    install_error_handlers(app)
    app.include_router(booru.router)
    app.state.booru = {site.info.site: site for site in sites}
    return app


async def api_for(*sites: BooruSite) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=booru_app(*sites)), base_url="http://testserver")


@pytest.fixture
async def api(gb: GelbooruDouble) -> AsyncIterator[httpx.AsyncClient]:
    gelbooru = site_for(gb)
    async with await api_for(gelbooru) as client:
        yield client
    await gelbooru.aclose()


async def test_posts_page_has_the_documented_shape(api: httpx.AsyncClient, gb: GelbooruDouble) -> None:
    response = await api.get("/v1/booru/gelbooru/posts", params={"tags": "1girl", "limit": 5})
    assert response.status_code == 200
    body = response.json()
    assert body["count"] == 61 and len(body["posts"]) == 5
    first = body["posts"][0]
    assert {"id", "md5", "file_url", "preview_url", "tags", "rating", "score", "width", "height", "source"} <= set(first)
    assert first["id"] == 9000 and first["score"] == 42 and first["rating"] == "sensitive"
    assert first["tags"] == ["1girl", "grabbing_another's_arm", "tom_&_jerry"]
    assert first["md5"] == gb.posts[-1]["md5"] and first["file_url"].endswith(f"{first['md5']}.png")


async def test_page_is_one_based(api: httpx.AsyncClient, gb: GelbooruDouble) -> None:
    first = (await api.get("/v1/booru/gelbooru/posts", params={"tags": "1girl", "limit": 10})).json()
    second = (await api.get("/v1/booru/gelbooru/posts", params={"tags": "1girl", "limit": 10, "page": 2})).json()
    assert gb.requests[-1][1]["pid"] == ["1"]
    assert not {p["id"] for p in first["posts"]} & {p["id"] for p in second["posts"]}
    assert second["posts"][0]["id"] == first["posts"][-1]["id"] - 1


async def test_default_limit_is_40(api: httpx.AsyncClient) -> None:
    body = (await api.get("/v1/booru/gelbooru/posts", params={"tags": "1girl"})).json()
    assert len(body["posts"]) == 40


async def test_no_results_is_an_empty_list(api: httpx.AsyncClient) -> None:
    response = await api.get("/v1/booru/gelbooru/posts", params={"tags": "no_such_tag"})
    assert response.status_code == 200 and response.json()["posts"] == [] and response.json()["count"] == 0


async def test_unknown_site_is_404_listing_supported_sites(api: httpx.AsyncClient) -> None:
    response = await api.get("/v1/booru/nosuchbooru/posts")
    assert response.status_code == 404 and "gelbooru" in response.json()["detail"]


@pytest.mark.parametrize("params", [{"limit": 0}, {"limit": 101}, {"page": 0}, {"limit": "x"}])
async def test_bad_paging_is_422(api: httpx.AsyncClient, gb: GelbooruDouble, params: dict[str, int | str]) -> None:
    response = await api.get("/v1/booru/gelbooru/posts", params=params)
    assert response.status_code == 422 and response.json()["detail"].startswith("Invalid request")
    assert gb.hits("api") == 0


async def test_pages_past_the_depth_limit_are_422_with_advice(api: httpx.AsyncClient) -> None:
    response = await api.get("/v1/booru/gelbooru/posts", params={"page": 202, "limit": 100})
    assert response.status_code == 422 and "id:<" in response.json()["detail"]


async def test_missing_credentials_are_502_naming_the_settings(gb: GelbooruDouble) -> None:
    async with await api_for(site_for(gb, api_key="", user_id="")) as api:
        response = await api.get("/v1/booru/gelbooru/posts")
    assert response.status_code == 502
    assert "JMBOORU_GELBOORU_API_KEY" in response.json()["detail"] and gb.hits("api") == 0


async def test_user_name_in_settings_is_502_explaining_the_numeric_id(gb: GelbooruDouble) -> None:
    async with await api_for(site_for(gb, api_key="abc", user_id="SomeName")) as api:
        response = await api.get("/v1/booru/gelbooru/posts")
    assert response.status_code == 502 and "numeric user id" in response.json()["detail"]


async def test_refused_credentials_are_502_naming_the_settings(gb: GelbooruDouble) -> None:
    async with await api_for(site_for(gb, api_key="nope", user_id="12345")) as api:
        response = await api.get("/v1/booru/gelbooru/posts")
    assert response.status_code == 502
    assert "JMBOORU_GELBOORU_USER_ID" in response.json()["detail"]


async def test_upstream_failure_is_502_without_upstream_text(api: httpx.AsyncClient, gb: GelbooruDouble) -> None:
    gb.fail_next(10, status=500)
    response = await api.get("/v1/booru/gelbooru/posts")
    assert response.status_code == 502
    assert "server error" not in response.json()["detail"] and gb.base_url not in response.json()["detail"]


async def test_unreachable_upstream_is_503() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    gelbooru = site_for(None, url=f"http://127.0.0.1:{port}", api_key="k", user_id="1", max_attempts=2)
    async with await api_for(gelbooru) as api:
        response = await api.get("/v1/booru/gelbooru/posts")
    assert response.status_code == 503


async def test_the_real_app_wires_a_client_from_settings(gb: GelbooruDouble, tmp_path: Path) -> None:
    settings = Settings(
        _env_file=None, data_dir=tmp_path / "data", **{**BOORU_URLS, "gelbooru_url": gb.base_url},  # type: ignore[call-arg]
        gelbooru_api_key=gb.api_key, gelbooru_user_id=gb.user_id, gelbooru_api_rate=1000,
    )
    app = create_app(settings)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as api:
            response = await api.get("/v1/booru/gelbooru/posts", params={"tags": "1girl", "limit": 3})
    assert response.status_code == 200 and response.json()["posts"][0]["id"] == 9000


async def test_sites_say_whether_their_credentials_are_usable(gb: GelbooruDouble) -> None:
    pasted = site_for(gb, api_key=f"&api_key={gb.api_key}&user_id={gb.user_id}", user_id="")
    async with await api_for(pasted, site_for(None, "danbooru", login="alice")) as api:
        sites = {s["site"]: s for s in (await api.get("/v1/booru/sites")).json()}
    async with await api_for(site_for(gb, user_id="SomeName")) as api:
        misnamed = (await api.get("/v1/booru/sites")).json()[0]
    assert (sites["gelbooru"]["configured"], sites["gelbooru"]["credentials_set"]) == (True, True)
    assert (sites["danbooru"]["configured"], sites["danbooru"]["credentials"]) == (False, "optional")  # key missing
    assert misnamed["configured"] is False and gb.hits("all") == 0
