"""The page, its static files, /docs and /redoc, and the thumbnail endpoint, over ASGITransport.

What a browser does with them is in test_web.py; here: what the server answers.
"""

from __future__ import annotations

import io
import re
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import pytest
from PIL import Image

from app.config import Settings
from app.sources.booru.registry import build_sites
from tests.conftest import app_client, make_settings
from tests.fakes.gelbooru import GelbooruDouble, make_posts
from tests.fakes.jm import JmDouble


@pytest.fixture
def gb() -> Iterator[GelbooruDouble]:
    with GelbooruDouble(make_posts(3, image_bytes=100_000)) as double:
        yield double


@pytest.fixture
async def web(tmp_path: Path, jm_double: JmDouble, gb: GelbooruDouble) -> AsyncIterator[httpx.AsyncClient]:
    settings = make_settings(tmp_path, jm_double, gelbooru_url=gb.base_url, gelbooru_api_key=gb.api_key,
                             gelbooru_user_id=gb.user_id)
    async with app_client(settings) as client:
        yield client


def outside_addresses(html: str) -> list[str]:
    return re.findall(r"""(?:src|href)\s*=\s*["']?((?:https?:)?//[^"' >]+)""", html)


async def test_page_is_served_at_the_root_with_its_controls(web: httpx.AsyncClient) -> None:
    page = await web.get("/")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    for name in ("Search JM", "Site", "Tags", "Images", "Jobs"):
        assert f'aria-label="{name}"' in page.text
    assert "default-src 'self'" in page.headers["content-security-policy"]
    assert outside_addresses(page.text) == []
    assert (await web.head("/")).status_code == 200  # uptime monitors ask with HEAD
    script = await web.get("/web/js/main.js")
    assert script.status_code == 200 and "javascript" in script.headers["content-type"]
    assert script.headers["cache-control"] == "no-cache"
    style = await web.get("/web/app.css")
    assert style.status_code == 200 and style.headers["content-type"].startswith("text/css")


async def test_the_page_shadows_no_api_route_and_unknown_paths_stay_json_404(web: httpx.AsyncClient) -> None:
    health = await web.get("/v1/health")
    assert health.status_code == 200 and health.json()["status"] == "ok"
    for path in ("/nope", "/index.html", "/web/nope.js", "/web/", "/web/../app/main.py", "/v1/foo"):
        answer = await web.get(path)
        assert answer.status_code == 404, path
        assert answer.headers["content-type"] == "application/json", path
        assert answer.json()["detail"], path


@pytest.mark.parametrize(("path", "assets"), [
    ("/docs", ["/web/vendor/swagger-ui/swagger-ui-bundle.js", "/web/vendor/swagger-ui/swagger-ui.css"]),
    ("/redoc", ["/web/vendor/redoc/redoc.standalone.js"]),
])
async def test_docs_pages_load_their_assets_from_the_package(web: httpx.AsyncClient, path: str,
                                                            assets: list[str]) -> None:
    page = await web.get(path)
    assert page.status_code == 200
    assert outside_addresses(page.text) == []
    assert "fonts.googleapis.com" not in page.text
    for asset in assets:
        assert asset in page.text
        served = await web.get(asset)
        assert served.status_code == 200 and len(served.content) > 100_000, asset
    assert (await web.get("/docs/oauth2-redirect")).status_code == 200
    schema = (await web.get("/openapi.json")).json()
    assert "/docs" not in schema["paths"] and "/" not in schema["paths"]


async def test_vendored_redoc_asks_no_cdn() -> None:
    bundle = (Path(__file__).parent.parent / "app/web/vendor/redoc/redoc.standalone.js").read_text()
    assert "cdn.redoc.ly" not in bundle


async def test_preview_is_the_sites_thumbnail(web: httpx.AsyncClient, gb: GelbooruDouble) -> None:
    posts = (await web.get("/v1/booru/gelbooru/posts", params={"tags": "1girl"})).json()["posts"]
    url = posts[0]["preview_url"]
    answer = await web.get("/v1/booru/gelbooru/preview", params={"url": url})
    assert answer.status_code == 200 and answer.headers["content-type"] == "image/jpeg"
    assert "max-age" in answer.headers["cache-control"]
    with Image.open(io.BytesIO(answer.content)) as image:
        assert max(image.size) == 150  # the double's 150 px thumbnail of a larger image
    referers = [headers.get("Referer") for path, _, headers in gb.requests if path.startswith("/thumbnails/")]
    assert referers == [f"{gb.base_url}/"]


@pytest.mark.parametrize(("url", "status"), [
    ("http://example.com/thumbnails/aa/bb/thumbnail_x.jpg", 400),
    ("file:///etc/passwd", 400),
    ("http://127.0.0.1:9/thumbnails/x.jpg", 400),  # the right host, another port
])
async def test_preview_refuses_other_hosts(web: httpx.AsyncClient, gb: GelbooruDouble, url: str,
                                           status: int) -> None:
    answer = await web.get("/v1/booru/gelbooru/preview", params={"url": url})
    assert answer.status_code == status and "image hosts" in answer.json()["detail"]
    assert gb.hits("thumbnail") == 0


async def test_preview_failures_are_clear(web: httpx.AsyncClient, gb: GelbooruDouble) -> None:
    unknown = await web.get("/v1/booru/nosuchbooru/preview", params={"url": f"{gb.base_url}/thumbnails/x.jpg"})
    assert unknown.status_code == 404 and "nosuchbooru" in unknown.json()["detail"]
    missing = await web.get("/v1/booru/gelbooru/preview",
                            params={"url": f"{gb.base_url}/thumbnails/aa/bb/thumbnail_{'0' * 32}.jpg"})
    assert missing.status_code == 502 and "HTTP 404" in missing.json()["detail"]
    page = await web.get("/v1/booru/gelbooru/preview", params={"url": f"{gb.base_url}/index.php"})
    assert page.status_code == 502  # an answer that is not an image is not passed on


def test_previews_follow_the_sites_own_image_hosts() -> None:
    """The same host policy as dataset images, default CDN hosts included."""
    sites = build_sites(Settings(_env_file=None))  # type: ignore[call-arg]
    danbooru, gelbooru = sites["danbooru"], sites["gelbooru"]
    assert danbooru.image_allowed("https://cdn.donmai.us/180x180/ab/cd/abcd.jpg")
    assert danbooru.image_allowed("https://danbooru.donmai.us/x.jpg")
    assert not danbooru.image_allowed("https://evil.donmai.us.example.com/x.jpg")
    assert not danbooru.image_allowed("https://donmai.us/x.jpg")
    assert gelbooru.image_allowed("https://img3.gelbooru.com/thumbnails/ab/cd/thumbnail_x.jpg")
    assert not gelbooru.image_allowed("https://notgelbooru.com/x.jpg")
    assert not gelbooru.image_allowed("https://img3.gelbooru.com:8443/x.jpg")
    assert not gelbooru.image_allowed("javascript:alert(1)")
