"""Every site end to end on one live server: the sites list, posts, dataset jobs whose captions
follow the options, and the ``jmbooru booru`` command on a folder."""

from __future__ import annotations

import hashlib
import io
import os
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from app.cli import main
from tests.conftest import LiveServer, app_client, make_settings
from tests.fakes.booru import DEFAULT_TAG_TYPES, BooruDouble, make_post, make_posts, plain_tags
from tests.fakes.danbooru import DanbooruDouble
from tests.fakes.gelbooru import GelbooruDouble
from tests.fakes.gelbooru_v02 import GelbooruV02Double
from tests.fakes.moebooru import MoebooruDouble
from tests.wsclient import follow

SITES = ("gelbooru", "safebooru", "danbooru", "yandere", "konachan")
CATEGORY_OF_TYPE = {0: "general", 1: "artist", 3: "copyright", 4: "character", 5: "metadata", 6: "metadata"}
ORDER = ["character", "copyright", "artist", "general"]


def posts() -> list[dict[str, Any]]:
    found = make_posts(30, ext="mixed")
    found.append(make_post(5000, ["1girl", "hifumi_(blue_archive)", "blue_archive", "highres", "artist_name",
                                  "grabbing_another's_arm"], rating="general"))
    return found


@pytest.fixture(scope="module")
def doubles() -> Iterator[dict[str, BooruDouble]]:
    made: dict[str, BooruDouble] = {
        "gelbooru": GelbooruDouble(posts()), "safebooru": GelbooruV02Double(posts()), "danbooru": DanbooruDouble(posts()),
        # yande.re numbers its types differently above 4: 5 is circle (an artist), 6 faults (metadata)
        "yandere": MoebooruDouble(posts(), tag_types={**DEFAULT_TAG_TYPES, "highres": 6, "artist_name": 5}),
        "konachan": MoebooruDouble(posts(), site_name="Konachan.com"),
    }
    for double in made.values():
        double.start()
    yield made
    for double in made.values():
        double.stop()


def site_settings(doubles: dict[str, BooruDouble]) -> dict[str, Any]:
    values: dict[str, Any] = {"gelbooru_api_key": "testkey", "gelbooru_user_id": "12345"}
    for name, double in doubles.items():
        values[f"{name}_url"] = double.base_url
        values[f"{name}_api_rate"] = 1000
    return values


@pytest.fixture(scope="module")
def live(doubles: dict[str, BooruDouble], tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    settings = make_settings(tmp_path_factory.mktemp("data"), **site_settings(doubles), max_images_per_job=40)
    with LiveServer(settings) as server:
        yield server


def expected_caption(site: str, double: BooruDouble, post: dict[str, Any]) -> str:
    """The site's tag order, categories ranked by ORDER, metadata dropped, SD formatting."""
    types = {**CATEGORY_OF_TYPE, 5: "artist"} if site == "yandere" else CATEGORY_OF_TYPE
    tags = [t for t in plain_tags(post) if types[double.tag_types.get(t, 0)] != "metadata"]
    tags.sort(key=lambda t: ORDER.index(types[double.tag_types.get(t, 0)]))
    return ", ".join((t.replace("_", " ") if len(t) > 3 else t).replace("(", r"\(").replace(")", r"\)") for t in tags)


async def test_sites_list_every_site_with_its_family_and_state(live: LiveServer, doubles: dict[str, BooruDouble]) -> None:
    async with httpx.AsyncClient(base_url=live.url) as http:
        sites = (await http.get("/v1/booru/sites")).json()
    by_name = {s["site"]: s for s in sites}
    assert list(by_name) == list(SITES)
    assert {n: (s["family"], s["credentials"], s["configured"]) for n, s in by_name.items()} == {
        "gelbooru": ("gelbooru", "required", True), "safebooru": ("gelbooru_v02", "none", True),
        "danbooru": ("danbooru", "optional", True), "yandere": ("moebooru", "none", True),
        "konachan": ("moebooru", "none", True),
    }
    assert by_name["danbooru"]["url"] == doubles["danbooru"].base_url and by_name["danbooru"]["page_limit"] == 200
    assert {"name", "credentials_set"} <= set(by_name["yandere"])


@pytest.mark.parametrize("site", SITES)
async def test_posts_have_the_documented_shape_on_every_site(live: LiveServer, doubles: dict[str, BooruDouble],
                                                             site: str) -> None:
    async with httpx.AsyncClient(base_url=live.url) as http:
        first = (await http.get(f"/v1/booru/{site}/posts", params={"tags": "1girl", "limit": 5})).json()
        second = (await http.get(f"/v1/booru/{site}/posts", params={"tags": "1girl", "limit": 5, "page": 2})).json()
    post = first["posts"][0]
    assert {"id", "md5", "file_url", "preview_url", "tags", "rating", "score", "width", "height", "source"} <= set(post)
    assert post["id"] == 5000 and "grabbing_another's_arm" in post["tags"] and post["md5"] == doubles[site].posts[-1]["md5"]
    assert {p["rating"] for p in first["posts"] + second["posts"]} <= {"general", "sensitive", "questionable", "explicit"}
    assert [p["id"] for p in second["posts"]] == list(range(1025, 1020, -1))
    assert first["count"] == (31 if site in ("gelbooru", "danbooru") else None)


@pytest.mark.parametrize("site", SITES)
async def test_dataset_job_on_every_site_has_verified_images_and_captions_by_category(
    live: LiveServer, doubles: dict[str, BooruDouble], site: str
) -> None:
    body = {"tags": "1girl", "max_images": 6, "caption": {"category_order": ORDER, "drop_categories": ["metadata"]}}
    async with httpx.AsyncClient(base_url=live.url) as http:
        started = await http.post(f"/v1/download/booru/{site}", json=body)
        assert started.status_code == 202, started.text
        final = (await follow(f"{live.ws_url}/ws/jobs/{started.json()['job_id']}"))[-1]
        assert final["event"] == "download_ready", final
        archive = zipfile.ZipFile(io.BytesIO((await http.get(final["download_url"])).content))
    double = doubles[site]
    by_md5 = {p["md5"]: p for p in double.posts}
    images = [n for n in archive.namelist() if not n.endswith(".txt")]
    assert len(images) == 6 and len(archive.namelist()) == 12
    for name in images:
        stem = name.rsplit(".", 1)[0]
        assert hashlib.md5(archive.read(name)).hexdigest() == stem and name.endswith(by_md5[stem]["_ext"])
        assert archive.read(f"{stem}.txt").decode() == expected_caption(site, double, by_md5[stem])
    newest = archive.read(f"{double.posts[-1]['md5']}.txt").decode()
    assert newest.startswith(r"hifumi \(blue archive\), blue archive, artist name, 1girl") and "highres" not in newest


@pytest.mark.parametrize("site", ["safebooru", "danbooru", "yandere"])
async def test_tags_or_filters_that_select_nothing_end_the_job_saying_which(live: LiveServer, site: str) -> None:
    async with httpx.AsyncClient(base_url=live.url) as http:
        nothing = await http.post(f"/v1/download/booru/{site}", json={"tags": "no_such_tag_at_all"})
        filtered = await http.post(f"/v1/download/booru/{site}", json={"tags": "1girl", "filters": {"min_score": 999}})
        no_match = (await follow(f"{live.ws_url}/ws/jobs/{nothing.json()['job_id']}"))[-1]
        all_filtered = (await follow(f"{live.ws_url}/ws/jobs/{filtered.json()['job_id']}"))[-1]
    assert no_match["event"] == "failed" and "no_such_tag_at_all" in no_match["message"]
    assert all_filtered["event"] == "failed" and "filters removed all 31" in all_filtered["message"]
    assert "spelling" not in all_filtered["message"]


@pytest.mark.parametrize("site", SITES)
def test_cli_downloads_into_a_folder_and_a_second_run_fetches_nothing(
    doubles: dict[str, BooruDouble], site: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str]
) -> None:
    for name in [n for n in os.environ if n.startswith("JMBOORU_")]:
        monkeypatch.delenv(name)
    for name, value in site_settings(doubles).items():
        monkeypatch.setenv(f"JMBOORU_{name.upper()}", str(value))
    double = doubles[site]
    args = ["booru", site, "1girl", "--max", "4", "--out", str(tmp_path), "-q", "--category-order", "character,general",
            "--no-escape", "--rating", "general,sensitive"]
    assert main(args) == 0
    assert "downloaded 4, skipped 0, failed 0, captions written 4" in capsys.readouterr().out
    caption = (tmp_path / f"{double.posts[-1]['md5']}.txt").read_text(encoding="utf-8")
    assert caption.startswith("hifumi (blue archive), ")
    images = double.hits("image")
    assert main(args) == 0
    assert "downloaded 0, skipped 4, failed 0, captions written 0" in capsys.readouterr().out
    assert double.hits("image") == images


async def test_refused_or_half_danbooru_credentials_are_502_at_once(doubles: dict[str, BooruDouble],
                                                                     tmp_path: Path) -> None:
    settings = make_settings(tmp_path / "data", **site_settings(doubles), danbooru_login="mallory",
                             danbooru_api_key="not-a-key")
    async with app_client(settings) as api:
        posts = await api.get("/v1/booru/danbooru/posts")
        half = make_settings(tmp_path / "data2", **site_settings(doubles), danbooru_login="mallory")
        async with app_client(half) as half_api:
            job = await half_api.post("/v1/download/booru/danbooru", json={"tags": "1girl"})
    assert posts.status_code == 502 and "JMBOORU_DANBOORU_API_KEY" in posts.json()["detail"]
    assert job.status_code == 502 and "JMBOORU_DANBOORU_LOGIN" in job.json()["detail"]


def test_refused_danbooru_credentials_are_exit_2_with_the_flags_to_use(
    doubles: dict[str, BooruDouble], tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in [n for n in os.environ if n.startswith("JMBOORU_")]:
        monkeypatch.delenv(name)
    monkeypatch.setenv("JMBOORU_DANBOORU_URL", doubles["danbooru"].base_url)
    code = main(["booru", "danbooru", "1girl", "--out", str(tmp_path / "cli"), "--login", "mallory", "--api-key", "nope"])
    err = capsys.readouterr().err
    assert code == 2 and "JMBOORU_DANBOORU_LOGIN" in err and "--login" in err and "Traceback" not in err
