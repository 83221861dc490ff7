"""The README's tour works against the doubles it points to (``python -m tests.fakes.serve``): the
album ids it uses exist there, the comments example has its 23 comments, and the offline booru
example gives a dataset on every site."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from app.config import Settings
from tests.conftest import app_client, wait_for
from tests.fakes.jm import JmDouble
from tests.fakes.serve import env_lines, start_doubles

ROOT = Path(__file__).resolve().parent.parent


def tour() -> str:
    text = (ROOT / "README.md").read_text()
    return text[text.index("## A tour with curl"):text.index("## WebSockets")]


@pytest.fixture(scope="module")
def doubles() -> Iterator[tuple[JmDouble, dict[str, Any]]]:
    jm, boorus = start_doubles()
    try:
        yield jm, boorus
    finally:
        for double in boorus.values():
            double.stop()
        jm.stop()


def settings_from(tmp_path: Path, doubles: tuple[JmDouble, dict[str, Any]]) -> Settings:
    env = tmp_path / "doubles.env"
    env.write_text("\n".join(env_lines(*doubles)) + "\n")
    return Settings(_env_file=env, data_dir=tmp_path / "data", gc_freeze=False,  # type: ignore[call-arg]
                    jm_retry_times=0, cleanup_interval_seconds=3600)


async def test_the_tour_album_ids_exist_in_the_jm_double(
    tmp_path: Path, doubles: tuple[JmDouble, dict[str, Any]]
) -> None:
    ids = set(re.findall(r"/v1/(?:info|get/cover|comments|download/album)/(\d+)", tour()))
    assert ids, "the tour names no album"
    async with app_client(settings_from(tmp_path, doubles)) as client:
        for album_id in sorted(ids):
            assert (await client.get(f"/v1/info/{album_id}")).status_code == 200, album_id
        comments = (await client.get("/v1/comments/600001", params={"page": 1})).json()
        assert comments["total"] == 23 and "/v1/comments/600001" in tour()
        ranked = [a["aid"] for a in (await client.get("/v1/rank/week")).json()]
        assert ranked[:2] == ["500001", "100015"]  # as the tour shows
        found = [a["album_id"] for a in (await client.get("/v1/search/romance/1")).json()]
        assert found[0] == "100015"


async def test_the_offline_booru_example_works_on_every_site(
    tmp_path: Path, doubles: tuple[JmDouble, dict[str, Any]]
) -> None:
    assert '{"tags": "1girl", "max_images": 10}' in tour()
    async with app_client(settings_from(tmp_path, doubles)) as client:
        sites = [s["site"] for s in (await client.get("/v1/booru/sites")).json()]
        assert sorted(sites) == sorted(doubles[1])
        jobs = {}
        for site in sites:
            posts = (await client.get(f"/v1/booru/{site}/posts", params={"tags": "1girl"})).json()
            assert posts["posts"], site
            resp = await client.post(f"/v1/download/booru/{site}", json={"tags": "1girl", "max_images": 10})
            assert resp.status_code == 202, (site, resp.text)
            jobs[site] = resp.json()["job_id"]
        for site, job_id in jobs.items():
            async def finished(job_id: str = job_id) -> dict[str, Any] | None:
                job = (await client.get(f"/v1/jobs/{job_id}")).json()
                return job if job["state"] in ("ready", "failed") else None

            job = await wait_for(finished, timeout=90)
            assert job["state"] == "ready" and job["done"] == 10, (site, job)
