"""The dataset checker: a truncated, an empty and a wrong-md5 image, in each mode."""

from __future__ import annotations

import hashlib
import io
import random
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from PIL import Image

from app.errors import Unprocessable
from app.sources.booru.base import BooruSite
from app.sources.dataset import download_dataset
from app.sources.dataset_check import check_dataset
from tests.conftest import site_for
from tests.fakes.gelbooru import GelbooruDouble, make_image, make_posts


@pytest.fixture
def gb() -> Iterator[GelbooruDouble]:
    with GelbooruDouble(make_posts(5, ext="jpg", image_bytes=3000)) as double:
        yield double


@pytest.fixture
async def client(gb: GelbooruDouble) -> AsyncIterator[BooruSite]:
    site = site_for(gb)
    yield site
    await site.aclose()


@pytest.fixture
async def damaged(gb: GelbooruDouble, client: BooruSite, tmp_path: Path) -> dict[str, Path]:
    """A downloaded folder of 5 images, 3 of them damaged, plus a left-over partial file."""
    await download_dataset(client, "1girl", tmp_path, max_images=5)
    images = sorted(tmp_path / name for name in contents(tmp_path) if name.endswith(".jpg"))
    truncated, empty, wrong = images[:3]
    truncated.write_bytes(truncated.read_bytes()[: truncated.stat().st_size * 2 // 3])
    empty.write_bytes(b"")
    wrong.write_bytes(make_image(999, fmt="jpg"))
    (tmp_path / f".{images[3].name}.abcd1234.part").write_bytes(b"half")
    return {"truncated": truncated, "empty": empty, "wrong": wrong, "good": images[3], "good2": images[4]}


def contents(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in folder.iterdir()}


def md5_ok(path: Path) -> bool:
    return hashlib.md5(path.read_bytes()).hexdigest() == path.stem


async def test_report_lists_problems_and_changes_nothing(damaged: dict[str, Path], tmp_path: Path) -> None:
    before = contents(tmp_path)

    result = await check_dataset(tmp_path, "report")

    kinds = {p.file: p.problem for p in result.problems}
    assert kinds == {
        damaged["truncated"].name: "truncated",
        damaged["empty"].name: "empty",
        damaged["wrong"].name: "md5_mismatch",
        next(n for n in before if n.endswith(".part")): "partial_file",
    }
    assert (result.checked, result.ok, result.unresolved) == (5, 2, 4)
    assert contents(tmp_path) == before


async def test_fix_with_a_client_fetches_broken_images_again(
    damaged: dict[str, Path], gb: GelbooruDouble, client: BooruSite, tmp_path: Path
) -> None:
    images_before = gb.hits("image")

    result = await check_dataset(tmp_path, "fix", client)

    assert result.fixed == 3 and result.unresolved == 0
    assert {p.action for p in result.problems if p.problem != "partial_file"} == {"refetched"}
    assert gb.hits("image") == images_before + 3
    assert all(md5_ok(damaged[k]) for k in ("truncated", "empty", "wrong"))
    assert not [name for name in contents(tmp_path) if name.startswith(".")]
    assert (await check_dataset(tmp_path, "report")).problems == []


async def test_fix_without_credentials_resaves_truncated_and_explains_the_rest(
    damaged: dict[str, Path], gb: GelbooruDouble, tmp_path: Path
) -> None:
    api_before = gb.hits("api")
    no_credentials = site_for(gb, api_key="", user_id="")
    result = await check_dataset(tmp_path, "fix", no_credentials)
    await no_credentials.aclose()

    actions = {p.file: p.action for p in result.problems}
    assert actions[damaged["truncated"].name] == "resaved"
    assert actions[damaged["empty"].name] == "unfixed" and actions[damaged["wrong"].name] == "unfixed"
    wrong = next(p for p in result.problems if p.file == damaged["wrong"].name)
    assert "JMBOORU_GELBOORU_API_KEY" in wrong.detail
    with Image.open(damaged["truncated"]) as img:
        img.load()  # decodes completely now
    assert gb.hits("api") == api_before
    after = {p.file: p.problem for p in (await check_dataset(tmp_path, "report")).problems}
    assert after[damaged["truncated"].name] == "md5_mismatch"  # re-encoded: honest about it


async def test_fix_resaves_a_truncated_png_without_md5_name(tmp_path: Path) -> None:
    img = Image.frombytes("RGB", (64, 64), random.Random(1).randbytes(64 * 64 * 3))
    buf = io.BytesIO()
    img.save(buf, "PNG")
    path = tmp_path / "photo.png"
    path.write_bytes(buf.getvalue()[: len(buf.getvalue()) // 2])

    result = await check_dataset(tmp_path, "fix")

    assert [p.action for p in result.problems] == ["resaved"]
    assert (await check_dataset(tmp_path, "report")).problems == []


async def test_delete_removes_broken_images_and_their_captions(damaged: dict[str, Path], tmp_path: Path) -> None:
    result = await check_dataset(tmp_path, "delete")

    assert result.deleted == 4 and result.unresolved == 0
    assert sorted(contents(tmp_path)) == sorted(
        [damaged["good"].name, damaged["good"].with_suffix(".txt").name,
         damaged["good2"].name, damaged["good2"].with_suffix(".txt").name]
    )


async def test_unknown_mode_is_refused(tmp_path: Path) -> None:
    with pytest.raises(Unprocessable):
        await check_dataset(tmp_path, "repair")
