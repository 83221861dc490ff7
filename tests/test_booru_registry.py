"""A new Gelbooru 0.2 site added through the registry alone: listed, searchable, downloadable, on the CLI."""

from __future__ import annotations

import hashlib
import io
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from app.cli import main
from app.sources.booru.registry import SITES, SiteEntry
from tests.conftest import app_client, make_settings, wait_for
from tests.fakes.booru import make_posts
from tests.fakes.gelbooru_v02 import GelbooruV02Double


@pytest.fixture
def rule34(monkeypatch: pytest.MonkeyPatch) -> Iterator[GelbooruV02Double]:
    with GelbooruV02Double(make_posts(12)) as double:
        entry = SiteEntry("rule34", "Rule 34", "gelbooru_v02", double.base_url, "none", rate=1000)
        monkeypatch.setitem(SITES, "rule34", entry)  # the whole change: one entry
        yield double


async def test_a_registry_entry_is_a_site_for_the_api_and_the_jobs(rule34: GelbooruV02Double, tmp_path: Path) -> None:
    async with app_client(make_settings(tmp_path / "data")) as api:
        sites = {s["site"]: s for s in (await api.get("/v1/booru/sites")).json()}
        posts = (await api.get("/v1/booru/rule34/posts", params={"tags": "1girl", "limit": 3})).json()
        started = await api.post("/v1/download/booru/rule34", json={"tags": "1girl", "max_images": 4})
        assert started.status_code == 202, started.text
        job_url = started.json()["status_url"]

        async def ready() -> bool:
            return bool((await api.get(job_url)).json()["state"] == "ready")

        await wait_for(ready, timeout=20)
        archive = zipfile.ZipFile(io.BytesIO((await api.get(f"{job_url}/file")).content))
    assert sites["rule34"]["family"] == "gelbooru_v02" and sites["rule34"]["url"] == rule34.base_url
    assert [p["id"] for p in posts["posts"]] == [1011, 1010, 1009] and posts["count"] is None
    images = [n for n in archive.namelist() if not n.endswith(".txt")]
    assert len(images) == 4 and all(hashlib.md5(archive.read(n)).hexdigest() == n.split(".")[0] for n in images)


def test_a_registry_entry_is_a_site_for_the_command_line(rule34: GelbooruV02Double, tmp_path: Path,
                                                         capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["booru", "rule34", "1girl", "--max", "3", "--out", str(tmp_path), "-q"]) == 0
    assert "downloaded 3, skipped 0, failed 0" in capsys.readouterr().out
    assert main(["booru", "no_such_site", "1girl", "--out", str(tmp_path)]) == 2
    assert "the sites are: gelbooru, safebooru, danbooru, yandere, konachan, rule34" in capsys.readouterr().err
