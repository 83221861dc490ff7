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


async def test_fix_without_credentials_removes_what_it_cannot_fetch_and_says_why(
    damaged: dict[str, Path], gb: GelbooruDouble, tmp_path: Path
) -> None:
    api_before = gb.hits("api")
    no_credentials = site_for(gb, api_key="", user_id="")
    result = await check_dataset(tmp_path, "fix", no_credentials)
    await no_credentials.aclose()

    actions = {p.file: p.action for p in result.problems}
    for key in ("truncated", "empty", "wrong"):
        assert actions[damaged[key].name] == "deleted"
        assert not damaged[key].exists() and not damaged[key].with_suffix(".txt").exists()
    wrong = next(p for p in result.problems if p.file == damaged["wrong"].name)
    assert "removed with its caption" in wrong.detail and "JMBOORU_GELBOORU_API_KEY" in wrong.detail
    assert gb.hits("api") == api_before
    assert (result.fixed, result.deleted, result.unresolved) == (0, 4, 0)
    assert (await check_dataset(tmp_path, "report")).problems == []  # what is left is a clean dataset


async def test_fix_resaves_a_truncated_png_without_md5_name(tmp_path: Path) -> None:
    img = Image.frombytes("RGB", (64, 64), random.Random(1).randbytes(64 * 64 * 3))
    buf = io.BytesIO()
    img.save(buf, "PNG")
    path = tmp_path / "photo.png"
    path.write_bytes(buf.getvalue()[: len(buf.getvalue()) // 2])
    path.with_suffix(".txt").write_text("a photo")

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


async def test_captions_missing_or_orphaned_are_reported_then_fixed(
    gb: GelbooruDouble, client: BooruSite, tmp_path: Path
) -> None:
    await download_dataset(client, "1girl", tmp_path, max_images=5)
    images = sorted(tmp_path / name for name in contents(tmp_path) if name.endswith(".jpg"))
    recaptionable, stray = images[0], images[1]
    recaptionable.with_suffix(".txt").unlink()
    (tmp_path / f"{'f' * 32}.txt").write_text("a caption whose image is gone")
    (tmp_path / "photo.png").write_bytes(make_image(5, fmt="png"))  # no md5 name, no caption
    stray.with_suffix(".txt").unlink()

    report = await check_dataset(tmp_path, "report")
    kinds = sorted((p.file, p.problem) for p in report.problems)
    assert kinds == sorted([
        (recaptionable.name, "missing_caption"), (stray.name, "missing_caption"),
        ("photo.png", "missing_caption"), (f"{'f' * 32}.txt", "orphan_caption"),
    ])
    assert report.ok == 3 and report.checked == 6

    # The site knows the first image's tags; the second's post is gone from it.
    gb.posts = [p for p in gb.posts if p.get("md5") != stray.stem]
    fixed = await check_dataset(tmp_path, "fix", client)
    actions = {p.file: (p.action, p.detail) for p in fixed.problems}
    assert actions[recaptionable.name][0] == "recaptioned"
    expected_caption = recaptionable.with_suffix(".txt").read_text()
    assert expected_caption and "caption written from Gelbooru" in actions[recaptionable.name][1]
    assert actions[stray.name][0] == "deleted" and "no post with this md5" in actions[stray.name][1]
    assert actions["photo.png"][0] == "deleted" and "no md5 name" in actions["photo.png"][1]
    assert actions[f"{'f' * 32}.txt"][0] == "deleted"
    assert not stray.exists() and not (tmp_path / "photo.png").exists()
    assert not (tmp_path / f"{'f' * 32}.txt").exists()
    assert (await check_dataset(tmp_path, "report")).problems == []
