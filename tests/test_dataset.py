"""Dataset downloads into a folder: layout, verification, re-runs, faults and cancellation."""

from __future__ import annotations

import asyncio
import hashlib
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from app.config import Settings
from app.errors import NotFound
from app.sources.booru.base import BooruSite, Post
from app.sources.captions import CaptionOptions, PostFilters
from app.sources.dataset import DatasetProgress, download, download_dataset, image_extension
from app.sources.selection import PostSelection
from tests.conftest import BOORU_URLS, site_for, wait_for
from tests.fakes.gelbooru import GelbooruDouble, make_post, make_posts


@pytest.fixture
def gb() -> Iterator[GelbooruDouble]:
    with GelbooruDouble(make_posts(30, ext="mixed")) as double:
        yield double


@pytest.fixture
async def client(gb: GelbooruDouble) -> AsyncIterator[BooruSite]:
    site = site_for(gb)
    yield site
    await site.aclose()


def dataset_files(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


def newest(gb: GelbooruDouble, n: int) -> list[dict]:
    return sorted(gb.posts, key=lambda p: -p["id"])[:n]


async def test_empty_folder_gets_verified_images_and_captions(gb: GelbooruDouble, client: BooruSite, tmp_path: Path) -> None:
    progress: list[DatasetProgress] = []
    result = await download_dataset(client, "1girl", tmp_path / "out", max_images=10, on_progress=progress.append)

    out = tmp_path / "out"
    expected = newest(gb, 10)
    names = {f"{p['md5']}.{p['_ext']}" for p in expected} | {f"{p['md5']}.txt" for p in expected}
    assert set(dataset_files(out)) == names  # nothing else: no .part, no temp captions
    for p in expected:
        image = out / f"{p['md5']}.{p['_ext']}"
        assert hashlib.md5(image.read_bytes()).hexdigest() == p["md5"]
    caption = (out / f"{expected[0]['md5']}.txt").read_text(encoding="utf-8")
    assert caption.startswith("1girl, ") and "_" not in caption.replace("^_^", "")
    assert (result.total, result.downloaded, result.skipped, result.failed, result.captions_written) == (10, 10, 0, 0, 10)
    assert result.bytes == sum(len(p["_data"]) for p in expected)
    assert progress[0] == DatasetProgress(0, 10, 0) and progress[-1].done == 10 and progress[-1].bytes == result.bytes
    assert [p.done for p in progress] == list(range(11))


async def test_rerun_skips_by_md5_and_writes_only_missing_captions(gb: GelbooruDouble, client: BooruSite, tmp_path: Path) -> None:
    await download_dataset(client, "1girl", tmp_path, max_images=10)
    posts = newest(gb, 10)
    for p in posts[:3]:
        (tmp_path / f"{p['md5']}.txt").unlink()
    edited = tmp_path / f"{posts[5]['md5']}.txt"
    edited.write_text("my own caption", encoding="utf-8")
    images_before = gb.hits("image")

    result = await download_dataset(client, "1girl", tmp_path, max_images=10)

    assert gb.hits("image") == images_before  # nothing refetched
    assert (result.downloaded, result.skipped, result.captions_written, result.bytes) == (0, 10, 3, 0)
    assert all((tmp_path / f"{p['md5']}.txt").exists() for p in posts)
    assert edited.read_text(encoding="utf-8") == "my own caption"

    result = await download_dataset(client, "1girl", tmp_path, max_images=10, overwrite_captions=True)
    assert result.captions_written == 10 and edited.read_text(encoding="utf-8").startswith("1girl")
    assert gb.hits("image") == images_before


async def test_existing_image_with_wrong_content_is_fetched_again(gb: GelbooruDouble, client: BooruSite, tmp_path: Path) -> None:
    await download_dataset(client, "1girl", tmp_path, max_images=3)
    victim = newest(gb, 3)[1]
    path = tmp_path / f"{victim['md5']}.{victim['_ext']}"
    path.write_bytes(path.read_bytes()[:20])

    result = await download_dataset(client, "1girl", tmp_path, max_images=3)

    assert (result.downloaded, result.skipped) == (1, 2)
    assert hashlib.md5(path.read_bytes()).hexdigest() == victim["md5"]


async def test_md5_mismatch_once_is_fetched_again(gb: GelbooruDouble, client: BooruSite, tmp_path: Path) -> None:
    victim = newest(gb, 1)[0]
    gb.corrupt(victim["md5"], times=1)

    result = await download_dataset(client, "1girl", tmp_path, max_images=1)

    assert (result.downloaded, result.failed) == (1, 0)
    assert gb.hits(victim["md5"]) == 2
    assert hashlib.md5((tmp_path / f"{victim['md5']}.{victim['_ext']}").read_bytes()).hexdigest() == victim["md5"]


async def test_md5_mismatch_always_fails_and_leaves_nothing(gb: GelbooruDouble, client: BooruSite, tmp_path: Path) -> None:
    victim = newest(gb, 3)[1]
    gb.truncate(victim["md5"], times=None)

    result = await download_dataset(client, "1girl", tmp_path, max_images=3)

    assert (result.downloaded, result.failed, result.captions_written) == (2, 1, 2)
    failed = next(f for f in result.files if f.status == "failed")
    assert failed.md5 == victim["md5"] and "md5" in (failed.error or "")
    assert gb.hits(victim["md5"]) == 2
    assert not [n for n in dataset_files(tmp_path) if victim["md5"] in n]
    assert not [n for n in dataset_files(tmp_path) if n.startswith(".")]


async def test_image_host_errors_fail_that_post_only(gb: GelbooruDouble, client: BooruSite, tmp_path: Path) -> None:
    victim = newest(gb, 2)[0]
    del victim["_data"]  # the double answers 404 for it
    result = await download_dataset(client, "1girl", tmp_path, max_images=2)
    assert (result.downloaded, result.failed) == (1, 1)
    assert "404" in (next(f for f in result.files if f.status == "failed").error or "")


async def test_filters_pick_exactly_max_matching_posts(gb: GelbooruDouble, client: BooruSite, tmp_path: Path) -> None:
    filters = PostFilters(rating=["general"], min_score=4)
    result = await download_dataset(client, "1girl", tmp_path, max_images=3, filters=filters)
    wanted = [p for p in newest(gb, 30) if p["rating"] == "general" and p["score"] >= 4][:3]
    assert result.total == 3 and {f.md5 for f in result.files} == {p["md5"] for p in wanted}


async def test_no_matching_posts_is_not_found_with_the_tags(client: BooruSite, tmp_path: Path) -> None:
    with pytest.raises(NotFound) as err:
        await download_dataset(client, "no_such_tag", tmp_path, max_images=5)
    assert "no_such_tag" in err.value.detail and "spelling" in err.value.detail and "Gelbooru" in err.value.detail


async def test_captions_follow_category_order_from_the_tag_api(gb: GelbooruDouble, client: BooruSite, tmp_path: Path) -> None:
    gb.posts = [make_post(1, ["1girl", "highres", "hifumi_(blue_archive)", "blue_archive", "artist_name"])]
    options = CaptionOptions(category_order=["character", "copyright", "artist", "general"], drop_categories=["metadata"])

    await download_dataset(client, "1girl", tmp_path, max_images=1, caption=options)

    caption = (tmp_path / f"{gb.posts[0]['md5']}.txt").read_text(encoding="utf-8")
    assert caption == r"hifumi \(blue archive\), blue archive, artist name, 1girl"
    assert gb.hits("tag") == 1


async def test_default_captions_need_no_tag_lookups(gb: GelbooruDouble, client: BooruSite, tmp_path: Path) -> None:
    await download_dataset(client, "1girl", tmp_path, max_images=2)
    assert gb.hits("tag") == 0


async def test_untrusted_md5_and_file_names_never_become_paths(gb: GelbooruDouble, client: BooruSite, tmp_path: Path) -> None:
    good = make_post(2, ["1girl"])
    good["image"] = "../../evil.sh"
    bad = {"id": 1, "md5": "../../../etc/passwd", "tags": "1girl", "file_url": f"{gb.base_url}/x.png", "_raw": True}
    local = {"id": 3, "md5": "0" * 32, "tags": "1girl", "file_url": "file:///etc/passwd", "_raw": True}
    gb.posts = [good, bad, local]
    out = tmp_path / "out"

    result = await download_dataset(client, "1girl", out, max_images=3)

    assert (result.downloaded, result.failed, result.unavailable) == (1, 0, 2)
    assert dataset_files(out) == sorted([f"{good['md5']}.png", f"{good['md5']}.txt"])
    assert dataset_files(tmp_path) == ["out"]


def test_extension_is_sanitised() -> None:
    assert image_extension(Post(file_url="https://x/images/ab/cd/abc.JPEG?x=1")) == "jpeg"
    assert image_extension(Post(file_url="https://x/a.php%00.png/../x", image="abc.webm")) == "webm"
    assert image_extension(Post(file_url="https://x/noext", image="../x.p/ng")) == "jpg"


async def test_workers_download_concurrently(gb: GelbooruDouble, client: BooruSite, tmp_path: Path) -> None:
    gb.latency = 0.2
    started = time.monotonic()
    result = await download_dataset(client, "1girl", tmp_path, max_images=8, workers=8)
    assert result.downloaded == 8
    assert time.monotonic() - started < 1.0  # one listing plus one round of images, not eight


async def test_an_image_is_published_while_the_next_one_is_fetched(gb: GelbooruDouble, client: BooruSite,
                                                                  tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """One worker: the first image's publication (rename, caption) is held in the file pool, and the
    second image is asked for meanwhile; released, every image lands with its caption."""
    import threading

    from app.sources.dataset import DatasetDownload

    release, held = threading.Event(), threading.Event()
    publish = DatasetDownload.publish

    def slow_first(part: Path | None, path: Path, caption_text: str | None) -> None:
        if not held.is_set():
            held.set()
            assert release.wait(10), "never released"
        publish(part, path, caption_text)

    monkeypatch.setattr(DatasetDownload, "publish", staticmethod(slow_first))
    task = asyncio.create_task(download_dataset(client, "1girl", tmp_path, max_images=3, workers=1))
    await wait_for(held.is_set, timeout=10, message="the first publication did not start")
    await wait_for(lambda: gb.hits("image") >= 2, timeout=10, message="the second image waited for the first's publication")
    assert not any(n.endswith(".txt") for n in dataset_files(tmp_path))  # the first is still held
    release.set()
    result = await task
    assert result.downloaded == 3 and result.captions_written == 3
    assert len([n for n in dataset_files(tmp_path) if n.endswith(".txt")]) == 3
    assert not any(n.startswith(".") for n in dataset_files(tmp_path))


async def test_a_publication_that_fails_ends_the_download_and_leaves_no_part(
        gb: GelbooruDouble, client: BooruSite, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import errno

    from app.sources.dataset import DatasetDownload

    def full_disk(part: Path | None, path: Path, caption_text: str | None) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(DatasetDownload, "publish", staticmethod(full_disk))
    with pytest.raises(OSError, match="No space left"):
        await download_dataset(client, "1girl", tmp_path, max_images=6, workers=2)
    assert [n for n in dataset_files(tmp_path)] == []  # no image, no caption, no part file


async def test_cancelling_removes_partial_files(gb: GelbooruDouble, client: BooruSite, tmp_path: Path) -> None:
    gb.posts = [make_post(1, ["1girl"], image_bytes=1_300_000), make_post(2, ["1girl"], image_bytes=1_300_000)]
    gb.image_stall = (1_150_000, 3.0)
    task = asyncio.create_task(download_dataset(client, "1girl", tmp_path, max_images=2))
    await wait_for(lambda: any(n.endswith(".part") for n in dataset_files(tmp_path)), timeout=5, interval=0.01,
                   message="no partial file appeared")

    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task

    assert dataset_files(tmp_path) == []


async def test_download_helper_builds_the_client_from_settings(gb: GelbooruDouble, tmp_path: Path) -> None:
    settings = Settings(
        _env_file=None, **{**BOORU_URLS, "gelbooru_url": gb.base_url}, gelbooru_api_key=gb.api_key,  # type: ignore[call-arg]
        gelbooru_user_id=gb.user_id, gelbooru_api_rate=1000,
    )
    result = await download("1girl", tmp_path, 2, settings=settings)
    assert result.downloaded == 2 and len(dataset_files(tmp_path)) == 4


async def test_post_scan_is_bounded_when_filters_reject_everything(gb: GelbooruDouble, client: BooruSite) -> None:
    gb.posts = make_posts(250, tags_pool=["x"])
    selection = PostSelection(client, "1girl", 5, PostFilters(min_score=10_000), max_scanned=150)
    assert [b async for b in selection.batches()] == [] and gb.hits("post") == 2
    assert selection.scanned == selection.filtered_out == 150
    assert "The filters removed the first 150" in selection.nothing_selected().detail


async def test_downloads_start_while_later_pages_are_still_listed(tmp_path: Path) -> None:
    with GelbooruDouble(make_posts(250)) as gb:
        client = site_for(gb, rate=4)
        progress: list[DatasetProgress] = []
        result = await download_dataset(client, "1girl", tmp_path / "out", max_images=250, workers=4,
                                        on_progress=progress.append)
        await client.aclose()
        order = [path.split("?")[0] for path, _, _ in gb.requests]
    assert result.downloaded == 250 and result.total == 250
    api_pages = [i for i, path in enumerate(order) if path.endswith("index.php")]
    first_image = next(i for i, path in enumerate(order) if not path.endswith("index.php"))
    assert len(api_pages) == 3
    assert first_image < api_pages[-1], "images should be fetched before the last page is listed"
    assert progress[0] == DatasetProgress(0, 250, 0) and progress[-1].total == 250
