"""The Python API a script uses: ``import jmbooru`` and await its three functions."""

from __future__ import annotations

import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

import jmbooru
from tests.conftest import make_settings
from tests.fakes.gelbooru import make_posts
from tests.fakes.gelbooru_v02 import GelbooruV02Double
from tests.fakes.jm import JmDouble

ROOT = Path(__file__).resolve().parent.parent


def test_importing_jmbooru_loads_nothing_heavy() -> None:
    code = ("import sys, jmbooru; print(sorted(m for m in ('httpx', 'pydantic', 'fastapi', 'jmcomic', 'PIL') "
            "if m in sys.modules), jmbooru.sites())")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=60,
                         env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert out.stdout.strip() == "[] ['gelbooru', 'safebooru', 'danbooru', 'yandere', 'konachan']", out.stderr


async def test_a_script_downloads_checks_and_fetches_an_album(tmp_path: Path, jm_double: JmDouble) -> None:
    settings = make_settings(tmp_path / "data", jm_double)
    with GelbooruV02Double(make_posts(4, ext="jpg")) as double:
        result = await jmbooru.download_dataset(
            "safebooru", "1girl", tmp_path / "set", 3, url=double.base_url, rate=1000, settings=settings,
            caption={"remove_underscore": False}, filters={"rating": ["general", "sensitive", "questionable",
                                                                      "explicit"]},
        )
        assert (result.downloaded, result.failed) == (3, 0)
        captions = sorted((tmp_path / "set").glob("*.txt"))
        assert len(captions) == 3 and all(c.with_suffix(".jpg").exists() for c in captions)
        (captions[0]).unlink()
        report = await jmbooru.check_dataset(tmp_path / "set", "report")
        assert [p.problem for p in report.problems] == ["missing_caption"]
        fixed = await jmbooru.check_dataset(tmp_path / "set", "fix", site="safebooru", url=double.base_url,
                                            settings=settings)
        assert [p.action for p in fixed.problems] == ["recaptioned"]

    archive = await jmbooru.download_album("JM200001", tmp_path / "comics", format="cbz", settings=settings)
    assert archive.name == "Two Chapters [JM200001].cbz"
    with zipfile.ZipFile(archive) as zf:
        assert "ComicInfo.xml" in zf.namelist() and "00005.webp" in zf.namelist()
    again = await jmbooru.download_album(200001, tmp_path / "comics", format="cbz", settings=settings)
    assert again == archive  # already there: not downloaded twice

    with pytest.raises(jmbooru.Error) as err:
        await jmbooru.download_album("999999", tmp_path / "comics", settings=settings)
    assert "does not exist" in err.value.detail
    with pytest.raises(jmbooru.Error) as bad:
        await jmbooru.download_album("100001", tmp_path / "comics", format="pdf", layout="chapters",
                                     settings=settings)
    assert "layout" in bad.value.detail
