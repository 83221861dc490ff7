"""De-duplication on real photographs (the ones in scikit-image's wheel), served by the Gelbooru double
as originals plus resized, re-encoded, WebP and cropped copies."""

from __future__ import annotations

import io
import json
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import imagehash
import pytest
from PIL import Image

from tests.conftest import LiveServer, make_settings
from tests.fakes.gelbooru import GelbooruDouble, make_post
from tests.fakes.jm import JmDouble
from tests.wsclient import follow

PHOTOS = ("astronaut", "chelsea", "coffee", "rocket", "camera", "immunohistochemistry")


def photo(name: str) -> Image.Image:
    from skimage import data

    return Image.fromarray(getattr(data, name)()).convert("RGB")


def encode(img: Image.Image, fmt: str, **options: Any) -> bytes:
    buf = io.BytesIO()
    img.save(buf, fmt, **options)
    return buf.getvalue()


def variants(img: Image.Image) -> dict[str, tuple[bytes, str]]:
    """Copies that must be dropped (and a crop that may be), as the bytes a site would serve."""
    w, h = img.size
    return {
        "half": (encode(img.resize((w // 2, h // 2), Image.Resampling.LANCZOS), "PNG"), "png"),
        "jpeg50": (encode(img, "JPEG", quality=50), "jpg"),
        "webp": (encode(img, "WEBP", quality=80), "webp"),
        "crop5": (encode(img.crop((w * 5 // 200, h * 5 // 200, w - w * 5 // 200, h - h * 5 // 200)), "PNG"), "png"),
    }


@pytest.fixture(scope="module")
def families() -> dict[str, dict[str, tuple[bytes, str]]]:
    out = {}
    for name in PHOTOS:
        img = photo(name)
        out[name] = {"original": (encode(img, "PNG"), "png"), **(variants(img) if name in PHOTOS[:3] else {})}
    return out


@pytest.fixture
def gb(families: dict[str, dict[str, tuple[bytes, str]]]) -> Iterator[GelbooruDouble]:
    posts, post_id = [], 70000
    for family, copies in families.items():
        for kind, (data, ext) in copies.items():
            post = make_post(post_id, ["photo", family, kind], data=data, ext=ext, score=post_id % 7)
            post["_family"], post["_kind"] = family, kind
            posts.append(post)
            post_id += 1
    with GelbooruDouble(posts) as double:
        yield double


@pytest.fixture
def live(tmp_path: Path, jm_double: JmDouble, gb: GelbooruDouble) -> Iterator[LiveServer]:
    settings = make_settings(tmp_path, jm_double, gelbooru_url=gb.base_url, gelbooru_api_key=gb.api_key,
                             gelbooru_user_id=gb.user_id, gelbooru_api_rate=100, max_images_per_job=100)
    with LiveServer(settings) as server:
        yield server


def hashes(data: bytes) -> tuple[imagehash.ImageHash, imagehash.ImageHash]:
    with Image.open(io.BytesIO(data)) as img:
        return imagehash.dhash(img), imagehash.phash(img)


async def test_resized_and_reencoded_copies_are_dropped_and_distinct_photos_kept(
    live: LiveServer, gb: GelbooruDouble
) -> None:
    body = {"tags": "photo", "max_images": 100, "dedupe": True, "exports": ["metadata_jsonl"]}
    async with httpx.AsyncClient(base_url=live.url) as http:
        started = await http.post("/v1/download/booru/gelbooru", json=body)
        assert started.status_code == 202, started.text
        frames = await follow(f"{live.ws_url}/ws/jobs/{started.json()['job_id']}", timeout=120)
        final = frames[-1]
        assert final["event"] == "download_ready", final
        zf = zipfile.ZipFile(io.BytesIO((await http.get(final["download_url"])).content))
    names = set(zf.namelist())
    by_file = {f"{p['md5']}.{p['_ext']}": p for p in gb.posts}
    report = json.loads(zf.read("dupes.json"))
    assert (report["algorithm"], report["hash_size"], report["thresholds"], report["keep"]) == (
        "dhash+phash", 8, {"dhash": 8, "phash": 10}, "largest")
    dropped = {d["file"]: d for d in report["dropped"]}

    for name, post in by_file.items():
        if post["_kind"] in ("half", "jpeg50", "webp"):
            assert name in dropped, f"{post['_family']} {post['_kind']} was kept"
    for d in report["dropped"]:
        post, kept = by_file[d["file"]], by_file[d["kept"]]
        assert post["_family"] == kept["_family"], f"{post['_family']} merged into {kept['_family']}"
        assert (d["md5"], d["post_id"], d["kept_post_id"]) == (post["md5"], post["id"], kept["id"])
        assert d["kept"] in names and d["file"] not in names and f"{post['md5']}.txt" not in names
        (dh_a, ph_a), (dh_b, ph_b) = hashes(post["_data"]), hashes(kept["_data"])
        assert (d["dhash"], d["phash"]) == (dh_a - dh_b, ph_a - ph_b)  # imagehash's own distances
        assert d["dhash"] <= 8 and d["phash"] <= 10
    kept_families = sorted(by_file[n]["_family"] for n in names if n in by_file)
    assert sorted(set(kept_families)) == sorted(PHOTOS)  # every distinct photo is still there
    for family in PHOTOS[:3]:  # the largest copy (the original: most pixels, then most bytes) stays
        original = next(n for n, p in by_file.items() if p["_family"] == family and p["_kind"] == "original")
        assert original in names
    listed = [json.loads(line)["file_name"] for line in zf.read("metadata.jsonl").decode().splitlines()]
    assert sorted(listed) == sorted(n for n in names if n in by_file)
    assert f"{len(dropped)} near-duplicates were dropped" in final["message"]
    assert final["message"].startswith(f"{len(listed)} images with captions are ready.")
