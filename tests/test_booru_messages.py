"""What booru users are told: rate limits while a job waits, request bodies refused with the key named,
hostile upstream values tolerated, source sentences without command-line flags, a lean command line."""

from __future__ import annotations

import ast
import json
import math
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from app.errors import UpstreamError, UpstreamUnavailable
from tests.conftest import BOORU_URLS, LiveServer, app_client, make_settings, site_for
from tests.fakes.booru import BooruDouble, make_post, make_posts
from tests.fakes.danbooru import DanbooruDouble
from tests.fakes.gelbooru import GelbooruDouble
from tests.fakes.gelbooru_v02 import GelbooruV02Double
from tests.fakes.moebooru import MoebooruDouble
from tests.wsclient import follow

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def gb() -> Iterator[GelbooruDouble]:
    with GelbooruDouble(make_posts(6)) as double:
        yield double


# --- rate limits ---


async def test_a_job_says_it_is_rate_limited_and_when_it_retries(gb: GelbooruDouble, tmp_path: Path) -> None:
    gb.rate_limit_next(1, retry_after=1, kind="post")
    settings = make_settings(tmp_path, gelbooru_url=gb.base_url, gelbooru_api_key=gb.api_key,
                             gelbooru_user_id=gb.user_id, gelbooru_api_rate=1000)
    with LiveServer(settings) as live:
        async with httpx.AsyncClient(base_url=live.url) as http:
            started = await http.post("/v1/download/booru/gelbooru", json={"tags": "1girl", "max_images": 3})
            frames = await follow(f"{live.ws_url}/ws/jobs/{started.json()['job_id']}")
    messages = [f["message"] for f in frames]
    waiting = [m for m in messages if m.startswith("Rate limited by Gelbooru; retrying at ")]
    assert waiting and re.fullmatch(r"Rate limited by Gelbooru; retrying at \d\d:\d\d:\d\d\.", waiting[0])
    assert frames[-1]["event"] == "download_ready" and gb.hits("post") == 2
    assert "Downloading." in messages[messages.index(waiting[0]):]  # and says so when it resumes


async def test_a_retry_after_beyond_the_bound_fails_at_once_with_the_wait(gb: GelbooruDouble) -> None:
    gb.rate_limit_next(1, retry_after=600, kind="post")
    site = site_for(gb, max_wait=60)
    started = time.monotonic()
    with pytest.raises(UpstreamUnavailable) as err:
        await site.search_posts("1girl")
    await site.aclose()
    assert time.monotonic() - started < 5 and gb.hits("post") == 1
    assert "10 minutes" in err.value.detail and err.value.headers == {"Retry-After": "600"}


async def test_posts_search_does_not_hold_an_http_request_for_a_long_retry_after(gb: GelbooruDouble,
                                                                                 tmp_path: Path) -> None:
    gb.rate_limit_next(1, retry_after=30, kind="post")
    settings = make_settings(tmp_path, gelbooru_url=gb.base_url, gelbooru_api_key=gb.api_key,
                             gelbooru_user_id=gb.user_id, gelbooru_api_rate=1000)
    async with app_client(settings) as api:
        started = time.monotonic()
        response = await api.get("/v1/booru/gelbooru/posts")
    assert time.monotonic() - started < 5
    assert response.status_code == 503 and response.headers["retry-after"] == "30"
    assert "30 seconds" in response.json()["detail"]


# --- request bodies ---


@pytest.mark.parametrize(("body", "named"), [
    ({"tags": "   \t "}, "tags"),
    ({"tags": "1girl", "max": 5}, "max"),
    ({"tags": "1girl", "caption": {"separator": ", ", "colour": 1}}, "caption.colour"),
    ({"tags": "1girl", "max_images": 41}, "JMBOORU_MAX_IMAGES_PER_JOB"),
])
async def test_booru_bodies_that_would_do_something_else_are_422_naming_the_key(
    tmp_path: Path, body: dict[str, Any], named: str
) -> None:
    async with app_client(make_settings(tmp_path, max_images_per_job=40)) as api:
        response = await api.post("/v1/download/booru/safebooru", json=body)
    assert response.status_code == 422 and named in response.json()["detail"], response.text


# --- hostile upstream data ---

HOSTILE = {"score": math.inf, "width": "1e400", "height": 10**40, "parent_id": math.nan, "source": ["a", "b"],
           "created_at": {"a": 1}, "rating": ["s"], "has_children": "maybe",
           "file_url": "https://xn--a-.example/x.png"}  # idna cannot decode it (tests/test_hostile_urls.py: more)
FIELD_NAMES = {"danbooru": {"width": "image_width", "height": "image_height", "tags": "tag_string"}}


@pytest.mark.parametrize(("site", "double_type"), [
    ("gelbooru", GelbooruDouble), ("safebooru", GelbooruV02Double), ("danbooru", DanbooruDouble),
    ("yandere", MoebooruDouble),
])
async def test_hostile_values_in_any_family_never_crash_a_search(tmp_path: Path, site: str,
                                                                 double_type: type[BooruDouble]) -> None:
    post = make_post(42, ["1girl", "tom_&_jerry"])
    names = FIELD_NAMES.get(site, {})
    wire = HOSTILE | {"id": "1e400", "tags": ["1girl", 7]}
    post["_wire"] = {names.get(k, k): v for k, v in wire.items()}
    with double_type([post, *make_posts(2)]) as double:
        settings = make_settings(tmp_path, **{**BOORU_URLS, f"{site}_url": double.base_url,
                                              f"{site}_api_rate": 1000},
                                 gelbooru_api_key="testkey", gelbooru_user_id="12345")
        async with app_client(settings) as api:
            response = await api.get(f"/v1/booru/{site}/posts", params={"tags": "1girl"})
            double.fail_next(1, status=200, kind="post", body=b"[" * 100_000 + b"]" * 100_000)
            nested = await api.get(f"/v1/booru/{site}/posts", params={"tags": "1girl"})
        served = [path for path, _, _ in double.requests]
    assert response.status_code == 200, (response.text, served)
    hostile = next(p for p in response.json()["posts"] if p["md5"] == post["md5"])
    assert (hostile["id"], hostile["score"], hostile["width"], hostile["parent_id"], hostile["source"]) == (0, 0, 0, 0, "")
    assert hostile["height"] == 2**53 - 1 and hostile["rating"] == "" and hostile["tags"] == ["1girl", "7"]
    assert hostile["file_url"] is None
    json.dumps(response.json(), allow_nan=False)  # every number is a real JSON number
    assert nested.status_code == 502 and "other than API data" in nested.json()["detail"], (nested.text, served)


async def test_an_error_object_where_posts_were_expected_is_a_sentence() -> None:
    with DanbooruDouble(make_posts(2)) as double:
        double.fail_next(1, status=200, kind="post", body=b'{"success": false, "message": "Internal error"}')
        site = site_for(double, "danbooru")
        with pytest.raises(UpstreamError) as err:
            await site.search_posts("1girl")
        await site.aclose()
    assert "Danbooru refused the search" in err.value.detail and "Internal" not in err.value.detail


# --- sentences and the command line ---


def test_sources_never_name_command_line_flags() -> None:
    """The sources speak to HTTP clients too; the CLI adds its own flag hints (cli_booru_run.with_flag_hints)."""
    offenders = []
    for path in sorted((ROOT / "app" / "sources").rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Constant) and isinstance(node.value, str) and re.search(r"(^|\s|\()--[a-z]", node.value):
                offenders.append(f"{path.relative_to(ROOT)}:{node.lineno}: {node.value[:60]}")
    assert offenders == []


def test_the_booru_command_loads_neither_the_web_stack_nor_jmcomic(tmp_path: Path) -> None:
    with GelbooruV02Double(make_posts(3)) as double:
        code = (
            "import sys; from app.cli import main; code = main(['booru', 'safebooru', '1girl', '--max', '2', "
            f"'--out', {str(tmp_path)!r}, '-q']); "
            "print(code, sorted(m for m in ('fastapi', 'starlette', 'jmcomic', 'uvicorn') if m in sys.modules))"
        )
        env = {"PATH": "/usr/bin:/bin", "JMBOORU_SAFEBOORU_URL": double.base_url, "JMBOORU_SAFEBOORU_API_RATE": "1000"}
        proc = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.splitlines()[-1] == "0 []"
    assert len([p for p in tmp_path.iterdir() if p.suffix == ".png"]) == 2
