"""Strict inputs (issue 19, item 7): JSON types as the schema says, ASCII digits for ids, invisible
tags are blank, and byte-range errors are JSON like every other error."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import LiveServer, app_client, make_settings
from tests.fakes.jm import JmDouble
from tests.wsclient import follow

LAX_BOORU_BODIES = [
    ({"tags": "1girl", "max_images": "5"}, "max_images"),
    ({"tags": "1girl", "max_images": True}, "max_images"),
    ({"tags": "1girl", "max_images": 5.5}, "max_images"),  # 5.0 is an integer to JSON Schema, 5.5 is not
    ({"tags": "1girl", "caption": {"remove_underscore": "false"}}, "caption.remove_underscore"),
    ({"tags": "1girl", "caption": {"escape_parentheses": 0}}, "caption.escape_parentheses"),
    ({"tags": "1girl", "filters": {"min_width": "768"}}, "filters.min_width"),
    ({"tags": "1girl", "filters": {"min_score": True}}, "filters.min_score"),
    ({"tags": "1girl", "client_id": 5}, "client_id"),
    ({"tags": "\u200b"}, "tags"),
    ({"tags": "\u2060 \ufeff"}, "tags"),
    ({"tags": "\u3000\u00a0\t"}, "tags"),
    ({"tags": "\u200b\u200d \u2060"}, "tags"),
]


@pytest.mark.parametrize(("body", "named"), LAX_BOORU_BODIES)
async def test_lax_booru_bodies_are_422_naming_the_field(tmp_path: Path, body: dict[str, Any], named: str) -> None:
    async with app_client(make_settings(tmp_path)) as api:
        response = await api.post("/v1/download/booru/safebooru", json=body)
        assert response.status_code == 422, response.text
        assert named in response.json()["detail"], response.json()


async def test_a_real_tag_next_to_an_invisible_one_is_kept_alone(tmp_path: Path) -> None:
    async with app_client(make_settings(tmp_path, max_images_per_job=5)) as api:
        response = await api.post("/v1/download/booru/safebooru", json={"tags": "\u200b cat_ears \ufeff"})
    assert response.status_code == 202, response.text
    assert response.json()["message"] == "A Safebooru dataset for 'cat_ears' is queued."


@pytest.mark.parametrize(("body", "named"), [
    ({"chapters": [True]}, "chapters"),
    ({"chapters": ["\u0661\u0662"]}, "chapters"),
    ({"layout": 1}, "layout"),
])
async def test_lax_album_bodies_are_422(tmp_path: Path, jm_double: JmDouble, body: dict[str, Any],
                                        named: str) -> None:
    async with app_client(make_settings(tmp_path, jm_double)) as api:
        response = await api.post("/v1/download/album/100001", json=body)
    assert response.status_code == 422 and named in response.json()["detail"], response.text


async def test_lax_favorites_bodies_are_422(tmp_path: Path, jm_double: JmDouble) -> None:
    async with app_client(make_settings(tmp_path, jm_double)) as api:
        for body in ({"limit": "5"}, {"limit": True}, {"page": "1"}, {"page": False}):
            response = await api.post("/v1/download/favorites", json=body)
            assert response.status_code == 422, (body, response.text)


UNICODE_IDS = ["\uff11\uff10\uff10\uff10\uff10\uff11",  # fullwidth 100001
               "\u0661\u0660\u0660\u0660\u0660\u0661",  # Arabic-Indic 100001
               "JM\uff11\uff10\uff10\uff10\uff10\uff11"]


@pytest.mark.parametrize("aid", UNICODE_IDS)
async def test_album_ids_are_ascii_digits_only(tmp_path: Path, jm_double: JmDouble, aid: str) -> None:
    async with app_client(make_settings(tmp_path, jm_double)) as api:
        assert (await api.get("/v1/info/100001")).status_code == 200  # the album exists
        jm_double.reset_hits()
        answers = [await api.get(f"/v1/info/{aid}"), await api.get(f"/v1/get/cover/{aid}"),
                   await api.get(f"/v1/comments/{aid}"), await api.post(f"/v1/download/album/{aid}")]
    for answer in answers:
        assert answer.status_code in (400, 404, 422), (answer.request.url, answer.status_code, answer.text)
        assert answer.headers["content-type"] == "application/json" and answer.json()["detail"]
    assert jm_double.hits("") == 0  # never asked JM for album 100001


async def test_range_errors_are_json(tmp_path: Path, jm_double: JmDouble) -> None:
    with LiveServer(make_settings(tmp_path, jm_double)) as live:
        async with httpx.AsyncClient(base_url=live.url) as http:
            started = await http.post("/v1/download/album/100001")
            frames = await follow(f"{live.ws_url}/ws/jobs/{started.json()['job_id']}")
            archive = f"/v1/download/{frames[-1]['file_name']}"
            size = len((await http.get(archive)).content)
            targets = [archive, frames[-1]["download_url"], "/", "/web/app.css"]
            for target in targets:
                for junk in ("bytes=a-b", "bytes=\uff11-\uff12", "bytes=1_0-2_0", "lines=0-1", "bytes=5-3", "bytes"):
                    # raw bytes: httpx only sends ASCII header values itself
                    answer = await http.get(target, headers={"Range": junk.encode()})
                    assert answer.status_code == 400, (target, junk, answer.status_code)
                    assert answer.headers["content-type"] == "application/json", (target, junk)
                    assert "Range header" in answer.json()["detail"]
            past = await http.get(archive, headers={"Range": f"bytes={size + 10}-"})
            assert past.status_code == 416 and past.headers["content-range"] == f"bytes */{size}"
            assert f"{size} bytes" in past.json()["detail"]
            good = await http.get(archive, headers={"Range": "bytes=0-9, 20-29"})
            assert good.status_code == 206
            assert (await http.get(archive, headers={"Range": "bytes=0-9"})).content == \
                (await http.get(archive)).content[:10]


def test_the_command_line_refuses_invisible_tags_too(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                    capsys: pytest.CaptureFixture[str]) -> None:
    from app.cli import main
    from tests.fakes.gelbooru import GelbooruDouble, make_posts

    with GelbooruDouble(make_posts(3)) as double:
        monkeypatch.setenv("JMBOORU_GELBOORU_URL", double.base_url)
        monkeypatch.setenv("JMBOORU_GELBOORU_API_KEY", double.api_key)
        monkeypatch.setenv("JMBOORU_GELBOORU_USER_ID", double.user_id)
        code = main(["gelbooru", "\u200b\ufeff", "--max", "2", "--out", str(tmp_path / "out"), "-q"])
        requested = list(double.requests)
    assert code != 0 and "give the tags to search for" in capsys.readouterr().err
    assert requested == []  # the whole site was never asked for
