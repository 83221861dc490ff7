"""The sentences users read: "1 post", not "1 posts"; one full stop, not "'zip'.."; a body that is
not JSON says to send a JSON object."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from app.sources.booru.base import BooruSite
from app.sources.captions import PostFilters
from app.sources.dataset import download_dataset
from app.sources.selection import PostSelection
from app.text import count, full_stop
from tests.conftest import site_for
from tests.fakes.booru import make_posts
from tests.fakes.gelbooru import GelbooruDouble


def test_counts_and_full_stops() -> None:
    assert [count(n, "post") for n in (0, 1, 2)] == ["0 posts", "1 post", "2 posts"]
    assert count(1, "match", "matches") == "1 match" and count(3, "match", "matches") == "3 matches"
    assert full_stop("ask for format 'zip'.") == "ask for format 'zip'."
    assert full_stop("use POST") == "use POST."


async def test_a_422_ends_with_one_full_stop(client: httpx.AsyncClient) -> None:
    resp = await client.post("/v1/download/album/100001", json={"format": "pdf", "layout": "chapters"})
    assert resp.status_code == 422
    detail = resp.json()["detail"]
    assert detail.endswith("format 'zip'.") and not detail.endswith("..")


@pytest.mark.parametrize("body", ["hello", "{bad", "[1, 2]", '"zip"', "5"])
async def test_a_body_that_is_not_a_json_object_says_send_a_json_object(client: httpx.AsyncClient, body: str) -> None:
    for path in ("/v1/download/album/100001", "/v1/download/booru/gelbooru"):
        resp = await client.post(path, content=body, headers={"Content-Type": "application/json"})
        assert resp.status_code == 422, (path, resp.text)
        assert "send a JSON object" in resp.json()["detail"]


async def test_one_post_is_one_post(tmp_path: Path) -> None:
    with GelbooruDouble(make_posts(1, tags_pool=["x"])) as gb:
        site: BooruSite = site_for(gb)
        try:
            selection = PostSelection(site, "1girl", 5, PostFilters(min_score=10_000))
            assert [b async for b in selection.batches()] == []
            assert "The filters removed the one Gelbooru post matching" in selection.nothing_selected().detail
            result = await download_dataset(site, "1girl", tmp_path, max_images=1)
        finally:
            await site.aclose()
    assert result.downloaded == 1
    assert "1 posts" not in result.summary() and "1 images" not in result.summary()


async def test_a_one_image_dataset_says_image_and_is(tmp_path: Path) -> None:
    from tests.conftest import app_client, make_settings, wait_for

    with GelbooruDouble(make_posts(3)) as gb:
        settings = make_settings(tmp_path / "data", gelbooru_url=gb.base_url, gelbooru_api_key=gb.api_key,
                                 gelbooru_user_id=gb.user_id, gelbooru_api_rate=100)
        async with app_client(settings) as client:
            job = (await client.post("/v1/download/booru/gelbooru", json={"tags": "1girl", "max_images": 1})).json()

            async def finished() -> dict | None:  # type: ignore[type-arg]
                state = (await client.get(f"/v1/jobs/{job['job_id']}")).json()
                return state if state["state"] in ("ready", "failed") else None

            final = await wait_for(finished, timeout=60)
    assert final["state"] == "ready", final
    assert final["message"] == "1 image with captions is ready."


def test_unknown_chapters_take_the_plural() -> None:
    from app.sources.album_archive import unknown_chapters_problem

    one = unknown_chapters_problem("200001", ("9",), [("200001", "第1話")])
    two = unknown_chapters_problem("200001", ("8", "9"), [("200001", "第1話")])
    assert one is not None and "has no chapter 9;" in one
    assert two is not None and "has no chapters 8, 9;" in two
