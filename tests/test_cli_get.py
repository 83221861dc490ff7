"""``jmbooru get URL`` against the JM and booru doubles: each link shape runs the matching command."""

from __future__ import annotations

import os
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from app.cli import main
from tests.fakes.booru import make_posts
from tests.fakes.gelbooru_v02 import GelbooruV02Double
from tests.fakes.jm import JmDouble
from tests.test_cli_jm import jm_env


@pytest.fixture
def safebooru() -> Iterator[GelbooruV02Double]:
    with GelbooruV02Double(make_posts(6)) as double:
        yield double


@pytest.fixture(autouse=True)
def cli_env(jm_double: JmDouble, safebooru: GelbooruV02Double, monkeypatch: pytest.MonkeyPatch) -> None:
    for name in list(os.environ):
        if name.startswith("JMBOORU_"):
            monkeypatch.delenv(name)
    env = jm_env(jm_double, JMBOORU_SAFEBOORU_URL=safebooru.base_url, JMBOORU_SAFEBOORU_API_RATE="100")
    for name, value in env.items():
        if name.startswith("JMBOORU_"):
            monkeypatch.setenv(name, value)


def test_a_jm_album_link_downloads_the_album(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["get", "https://18comic.vip/album/100001/plain-album", "-o", str(tmp_path), "--format", "cbz",
                 "-q"]) == 0
    assert [p.name for p in tmp_path.iterdir()] == ["Plain Album [JM100001].cbz"]


def test_a_jm_chapter_link_downloads_that_chapter_of_its_album(tmp_path: Path) -> None:
    assert main(["get", "jmcomic-zzz.one/photo/200002", "-o", str(tmp_path), "-q"]) == 0
    (archive,) = tmp_path.iterdir()
    assert "[JM200001]" in archive.name
    with zipfile.ZipFile(archive) as zf:
        assert len([n for n in zf.namelist() if n != "cover.jpg"]) == 2  # chapter 200002's two pages


def test_a_booru_post_link_downloads_that_post(tmp_path: Path, safebooru: GelbooruV02Double) -> None:
    post = safebooru.posts[2]
    link = f"{safebooru.base_url}/index.php?page=post&s=view&id={post['id']}"
    assert main(["get", link, "-o", str(tmp_path), "-q"]) == 0
    assert sorted(p.name for p in tmp_path.iterdir()) == [f"{post['md5']}.png", f"{post['md5']}.txt"]


@pytest.mark.parametrize(("argv", "words"), [
    (["https://safebooru.org/index.php?page=pool&s=show&id=4"], ["safebooru has no pools; pools work on danbooru"]),
    (["https://example.com/a/b"], ["cannot use this link", "/album/<id>"]),
    (["https://safebooru.org/index.php?page=post&s=list&tags=1girl", "--format", "pdf"], ["--format applies to JM and pool links"]),
    (["https://18comic.vip/album/999999"], ["does not exist"]),
])
def test_links_that_cannot_be_downloaded_exit_2_with_a_sentence(
        argv: list[str], words: list[str], tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["get", *argv, "-o", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert all(w in err for w in words), err
