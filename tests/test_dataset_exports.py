"""Trainer-ready booru datasets end to end: a job with every export, read by what trainers run.

Hugging Face ``datasets`` loads the archive's folder as an imagefolder offline; kohya's schema accepts
the toml; kohya's bucket and tag-frequency arithmetic (tests/trainer_clients.py) agree with the files.
"""

from __future__ import annotations

import hashlib
import io
import json
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import toml
from PIL import Image

from tests.conftest import LiveServer, make_settings
from tests.fakes.gelbooru import GelbooruDouble, make_post
from tests.fakes.jm import JmDouble
from tests.trainer_clients import (
    kohya_buckets,
    kohya_config_validator,
    kohya_select_bucket,
    kohya_tag_frequency,
    resolved,
)
from tests.wsclient import follow

SIZES = [(640, 960), (1200, 800), (512, 512), (300, 1000), (1024, 1024), (1500, 600), (700, 700), (832, 1216)]
ALL_EXPORTS = ["metadata_jsonl", "json_captions", "kohya_toml", "tag_frequency", "buckets"]


def posts() -> list[dict[str, Any]]:
    tags = ["1girl", "solo", "hifumi_(blue_archive)", "blue_archive", "artist_name", "highres", "long_hair"]
    made = [make_post(41000 + i, tags[: 3 + i % 5], size=size, ext=("png", "jpg")[i % 2], score=10 - i,
                      source="https://x.test/a?b=1&amp;c=2" if i == 0 else "")
            for i, size in enumerate(SIZES)]
    made[1]["parent_id"] = 41000  # a child of the first post
    made[0]["has_children"] = "true"
    return made


@pytest.fixture
def gb() -> Iterator[GelbooruDouble]:
    with GelbooruDouble(posts()) as double:
        yield double


@pytest.fixture
def live(tmp_path: Path, jm_double: JmDouble, gb: GelbooruDouble) -> Iterator[LiveServer]:
    settings = make_settings(tmp_path, jm_double, gelbooru_url=gb.base_url, gelbooru_api_key=gb.api_key,
                             gelbooru_user_id=gb.user_id, gelbooru_api_rate=100, max_images_per_job=50)
    with LiveServer(settings) as server:
        yield server


async def run_job(live: LiveServer, body: dict[str, Any]) -> tuple[dict[str, Any], zipfile.ZipFile]:
    async with httpx.AsyncClient(base_url=live.url) as http:
        started = await http.post("/v1/download/booru/gelbooru", json=body)
        assert started.status_code == 202, started.text
        frames = await follow(f"{live.ws_url}/ws/jobs/{started.json()['job_id']}")
        assert frames[-1]["event"] == "download_ready", frames[-1]
        archive = await http.get(frames[-1]["download_url"])
    return frames[-1], zipfile.ZipFile(io.BytesIO(archive.content))


async def test_every_export_is_what_trainers_read(live: LiveServer, gb: GelbooruDouble, tmp_path: Path) -> None:
    body = {"tags": "1girl", "max_images": 20, "exports": ["buckets", *ALL_EXPORTS],
            "export_options": {"trigger": "acc_trigger", "num_repeats": 10}}
    final, zf = await run_job(live, body)
    folder = tmp_path / "unpacked"
    zf.extractall(folder)
    images = sorted(n for n in zf.namelist() if n.rsplit(".", 1)[-1] in ("png", "jpg"))
    assert len(images) == len(SIZES)
    captions = {n: (folder / f"{n.split('.')[0]}.txt").read_text(encoding="utf-8") for n in images}
    assert all(c.startswith("acc_trigger, ") for c in captions.values())

    # metadata.jsonl: one line per image, the caption as the .txt, kohya's keys, no "tags"
    lines = [json.loads(line) for line in (folder / "metadata.jsonl").read_text(encoding="utf-8").splitlines()]
    assert sorted(line["file_name"] for line in lines) == images
    by_md5 = {p["md5"]: p for p in gb.posts}
    for line in lines:
        name = line["file_name"]
        post = by_md5[name.split(".")[0]]
        assert "tags" not in line
        assert line["text"] == line["caption"] == captions[name] and line["image_path"] == name
        with Image.open(folder / name) as img:
            assert line["image_size"] == list(img.size)
        assert (line["post_id"], line["md5"], line["site"], line["score"]) == (post["id"], post["md5"], "gelbooru",
                                                                                post["score"])
        assert line["rating"] == post["rating"]
        assert line["source"] == ("https://x.test/a?b=1&c=2" if post["id"] == 41000 else "")
        groups = line["tag_categories"]
        assert list(groups) == ["character", "copyright", "artist", "general", "metadata", "deprecated"]
        items = captions[name].split(", ")[1:]
        assert sorted(sum(groups.values(), [])) == sorted(items)
        assert groups["character"] == [r"hifumi \(blue archive\)"]
        assert json.loads((folder / f"{post['md5']}.json").read_text(encoding="utf-8")) == line

    # Hugging Face datasets, offline: every row, text equal to the .txt
    rows = load_imagefolder(folder)
    assert len(rows) == len(images)
    assert sorted(r["text"] for r in rows) == sorted(captions.values())

    # kohya's ConfigSanitizer, DreamBooth with and without fine-tuning support
    config = toml.load(folder / "dataset_config.toml")
    for finetuning in (False, True):
        kohya_config_validator(finetuning=finetuning)(config)
    expected = {"enable_bucket": True, "resolution": 1024, "min_bucket_reso": 256, "max_bucket_reso": 2048,
                "bucket_reso_steps": 64, "bucket_no_upscale": False, "caption_extension": ".txt",
                "shuffle_caption": True, "keep_tokens": 1, "image_dir": ".", "num_repeats": 10}
    assert {key: resolved(config, key) for key in expected} == expected
    assert "metadata_file" not in config["datasets"][0]["subsets"][0]
    assert "export_options.image_dir" in (folder / "dataset_config.toml").read_text(encoding="utf-8")

    # buckets.json: kohya's own arithmetic
    doc = json.loads((folder / "buckets.json").read_text(encoding="utf-8"))
    resos = kohya_buckets(1024, 256, 2048, 64)
    for name in images:
        with Image.open(folder / name) as img:
            assert tuple(doc["images"][name]) == kohya_select_bucket(*img.size, resos)
    assert sum(b["count"] for b in doc["buckets"]) == len(images)
    assert [b["resolution"] for b in doc["buckets"]] == sorted(b["resolution"] for b in doc["buckets"])

    # tag_frequency.json: kohya's rule over the .txt captions, named after the archive
    frequency = json.loads((folder / "tag_frequency.json").read_text(encoding="utf-8"))
    assert frequency == {final["file_name"].removesuffix(".zip"): kohya_tag_frequency(list(captions.values()))}
    assert frequency[final["file_name"].removesuffix(".zip")]["acc_trigger"] == len(images)


def load_imagefolder(folder: Path) -> list[dict[str, Any]]:
    # Offline before datasets is imported (it reads these once): the test must never reach the Hub.
    with pytest.MonkeyPatch.context() as env:
        env.setenv("HF_DATASETS_OFFLINE", "1")
        env.setenv("HF_HUB_OFFLINE", "1")
        from datasets import config, load_dataset

        assert config.HF_HUB_OFFLINE

        dataset = load_dataset("imagefolder", data_dir=str(folder), split="train", cache_dir=str(folder.parent / "hf"))
        return [dict(row) for row in dataset]


async def test_skip_variants_and_image_dir(live: LiveServer, gb: GelbooruDouble, tmp_path: Path) -> None:
    body = {"tags": "1girl", "max_images": 7, "skip_variants": "children", "exports": ["kohya_toml", "tag_frequency"],
            "export_options": {"image_dir": "/data/train/10_hifumi", "resolution": 768, "keep_tokens": 2}}
    final, zf = await run_job(live, body)
    names = zf.namelist()
    child = gb.post_by_md5(next(p["md5"] for p in gb.posts if p["id"] == 41001))
    assert not any(n.startswith(child["md5"]) for n in names)  # never listed, so never downloaded
    assert gb.hits(child["md5"]) == 0
    assert len([n for n in names if n.endswith(".txt")]) == 7  # the skipped child did not count towards max
    assert "1 posts with a parent or children were skipped" in final["message"]
    config = toml.loads(zf.read("dataset_config.toml").decode())
    kohya_config_validator(finetuning=True)(config)
    assert (resolved(config, "image_dir"), resolved(config, "resolution"), resolved(config, "max_bucket_reso"),
            resolved(config, "keep_tokens")) == ("/data/train/10_hifumi", 768, 1536, 2)
    assert list(json.loads(zf.read("tag_frequency.json"))) == ["10_hifumi"]


async def test_parents_are_skipped_and_defaults_leave_the_archive_alone(live: LiveServer, gb: GelbooruDouble) -> None:
    _, zf = await run_job(live, {"tags": "1girl", "max_images": 20, "skip_variants": "parents"})
    parent = next(p for p in gb.posts if p["id"] == 41000)
    assert f"{parent['md5']}.txt" not in zf.namelist()
    _, plain = await run_job(live, {"tags": "solo", "max_images": 20})
    assert all(n.endswith((".txt", ".png", ".jpg")) for n in plain.namelist())  # today's archive, nothing more
    for name in plain.namelist():
        if not name.endswith(".txt"):
            assert hashlib.md5(plain.read(name)).hexdigest() == name.split(".")[0]


BAD_BODIES = [
    ({"exports": ["nope"]}, "nope"),
    ({"exports": "metadata_jsonl"}, "exports"),
    ({"export_options": {"resolution": 1000}}, "1000"),
    ({"export_options": {"resolution": "1024"}}, "resolution"),
    ({"export_options": {"num_repeats": 0}}, "num_repeats"),
    ({"export_options": {"trigger": "a, b"}}, "a, b"),
    ({"export_options": {"trigger": "  "}}, "trigger"),
    ({"export_options": {"image_dir": "a\nb"}}, "image_dir"),
    ({"export_options": {"keep_tokens": 256}}, "keep_tokens"),
    ({"export_options": {"colour": 1}}, "colour"),
    ({"dedupe": {"keep": "biggest"}}, "biggest"),
    ({"dedupe": {"dhash": 65}}, "dhash"),
    ({"dedupe": {"algo": "lpips"}}, "algo"),
    ({"dedupe": "yes"}, "yes"),
    ({"dedupe": 1}, "dedupe"),
    ({"skip_variants": "siblings"}, "siblings"),
]


async def test_bad_trainer_options_are_422_before_any_job(live: LiveServer, gb: GelbooruDouble) -> None:
    async with httpx.AsyncClient(base_url=live.url) as http:
        for extra, named in BAD_BODIES:
            resp = await http.post("/v1/download/booru/gelbooru", json={"tags": "1girl", **extra})
            assert resp.status_code == 422, (extra, resp.text)
            assert named in resp.json()["detail"], (extra, resp.json())
    assert gb.hits("post") == 0  # nothing was listed: no job started


async def test_requests_differing_in_trainer_keys_are_different_jobs(live: LiveServer) -> None:
    async with httpx.AsyncClient(base_url=live.url) as http:
        ids = set()
        for extra in ({}, {"exports": ["buckets"]}, {"dedupe": True}, {"skip_variants": "children"},
                      {"export_options": {"num_repeats": 2}}):
            resp = await http.post("/v1/download/booru/gelbooru", json={"tags": "1girl", "max_images": 2, **extra})
            assert resp.status_code == 202 and not resp.json()["joined"]
            ids.add(resp.json()["job_id"])
        same = await http.post("/v1/download/booru/gelbooru",
                               json={"tags": "1girl", "max_images": 2, "exports": ["buckets", "buckets"]})
        assert same.json()["joined"]
    assert len(ids) == 5


async def test_danbooru_posts_bring_their_own_categories_and_parents(tmp_path: Path, jm_double: JmDouble) -> None:
    from tests.fakes.danbooru import DanbooruDouble

    made = posts()
    with DanbooruDouble(made) as db:
        settings = make_settings(tmp_path, jm_double, danbooru_url=db.base_url, danbooru_api_rate=100)
        with LiveServer(settings) as server:
            body = {"tags": "1girl", "max_images": 20, "exports": ["metadata_jsonl"], "skip_variants": "children",
                    "export_options": {"trigger": "db_lora"}}
            async with httpx.AsyncClient(base_url=server.url) as http:
                started = await http.post("/v1/download/booru/danbooru", json=body)
                assert started.status_code == 202, started.text
                frames = await follow(f"{server.ws_url}/ws/jobs/{started.json()['job_id']}")
                assert frames[-1]["event"] == "download_ready", frames[-1]
                zf = zipfile.ZipFile(io.BytesIO((await http.get(frames[-1]["download_url"])).content))
        lines = [json.loads(x) for x in zf.read("metadata.jsonl").decode().splitlines()]
        assert len(lines) == len(SIZES) - 1 and 41001 not in {line["post_id"] for line in lines}
        assert db.hits("tag") == 0  # Danbooru posts carry their tag categories: nothing to look up
        for line in lines:
            assert line["site"] == "danbooru" and line["text"].startswith("db_lora, ")
            assert line["tag_categories"]["character"] == [r"hifumi \(blue archive\)"]
            assert "1girl" in line["tag_categories"]["general"]
