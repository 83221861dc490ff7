"""``jmbooru gelbooru`` with the trainer flags, and ``jmbooru check DIR --exports`` after hand edits."""

from __future__ import annotations

import hashlib
import io
import json
import os
from collections.abc import Iterator
from pathlib import Path

import pytest
import toml
from PIL import Image

from app.cli import main
from tests.fakes.gelbooru import GelbooruDouble, make_post
from tests.trainer_clients import kohya_config_validator, kohya_tag_frequency, resolved


def posts() -> list[dict]:
    made = [make_post(500 + i, ["1girl", "solo", "hifumi_(blue_archive)", "blue_archive"][: 2 + i % 3],
                      size=(64 + 16 * i, 96), score=i) for i in range(6)]
    made[2]["parent_id"] = 500
    # post 503 is a real photograph; post 510 the same at half size as JPEG: a near-duplicate to lose
    from skimage import data

    coffee = Image.fromarray(data.coffee()).resize((300, 200))
    original, copy = io.BytesIO(), io.BytesIO()
    coffee.save(original, "PNG")
    coffee.resize((150, 100)).save(copy, "JPEG", quality=60)
    made[3] = make_post(503, ["1girl", "solo", "blue_archive"], data=original.getvalue(), score=3)
    made.append(make_post(510, ["1girl", "solo"], data=copy.getvalue(), ext="jpg"))
    return made


@pytest.fixture
def gb(monkeypatch: pytest.MonkeyPatch) -> Iterator[GelbooruDouble]:
    with GelbooruDouble(posts()) as double:
        for name in list(os.environ):
            if name.startswith("JMBOORU_"):
                monkeypatch.delenv(name)
        monkeypatch.setenv("JMBOORU_GELBOORU_URL", double.base_url)
        monkeypatch.setenv("JMBOORU_GELBOORU_API_KEY", double.api_key)
        monkeypatch.setenv("JMBOORU_GELBOORU_USER_ID", double.user_id)
        monkeypatch.setenv("JMBOORU_GELBOORU_API_RATE", "1000")
        yield double


def test_download_with_exports_dedupe_and_skip_variants(gb: GelbooruDouble, tmp_path: Path,
                                                         capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "10_hifumi"
    code = main(["gelbooru", "1girl", "--max", "20", "--out", str(out), "-q",
                 "--exports", "metadata_jsonl,json_captions,kohya_toml,tag_frequency,buckets",
                 "--trigger", "hifumi_lora", "--num-repeats", "10", "--dedupe", "--skip-variants", "children"])
    assert code == 0, capsys.readouterr().err
    child, copy = gb.posts[2], gb.posts[6]
    assert not (out / f"{child['md5']}.png").exists() and gb.hits(child["md5"]) == 0
    assert not (out / f"{copy['md5']}.jpg").exists() and not (out / f"{copy['md5']}.txt").exists()
    dupes = json.loads((out / "dupes.json").read_text())
    assert [(d["post_id"], d["kept_post_id"]) for d in dupes["dropped"]] == [(510, 503)]
    images = sorted(p.name for p in out.glob("*.png"))
    assert len(images) == 5
    lines = [json.loads(line) for line in (out / "metadata.jsonl").read_text().splitlines()]
    assert sorted(line["file_name"] for line in lines) == images
    config = toml.load(out / "dataset_config.toml")
    kohya_config_validator(finetuning=False)(config)
    assert resolved(config, "image_dir") == str(out.resolve())
    assert (resolved(config, "num_repeats"), resolved(config, "keep_tokens")) == (10, 1)
    captions = [(out / f"{n.split('.')[0]}.txt").read_text() for n in images]
    assert all(c.startswith("hifumi_lora, ") for c in captions)
    assert json.loads((out / "tag_frequency.json").read_text()) == {"10_hifumi": kohya_tag_frequency(captions)}
    printed = capsys.readouterr().out
    assert "dropped 1 near-duplicate images" in printed
    assert "1 posts with a parent or children were skipped" in printed


def test_check_rewrites_exports_from_hand_edited_captions(gb: GelbooruDouble, tmp_path: Path,
                                                          capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "ds"
    assert main(["gelbooru", "solo", "--max", "3", "--out", str(out), "-q", "--exports", "metadata_jsonl"]) == 0
    first = sorted(out.glob("*.png"))[0]
    caption = out / f"{first.stem}.txt"
    caption.write_text("my own tag, hifumi \\(blue archive\\), solo", encoding="utf-8")
    edited = caption.stat().st_mtime_ns
    capsys.readouterr()

    video = out / f"{hashlib.md5(b'not a picture').hexdigest()}.webm"  # kept by check, but no image
    video.write_bytes(b"not a picture")
    video.with_suffix(".txt").write_text("animated", encoding="utf-8")
    assert main(["check", str(out), "--exports", "metadata_jsonl,tag_frequency,buckets", "--resolution", "512"]) == 0
    assert caption.stat().st_mtime_ns == edited  # never rewritten
    line = next(json.loads(x) for x in (out / "metadata.jsonl").read_text().splitlines()
                if x and json.loads(x)["md5"] == first.stem)
    assert line["text"] == "my own tag, hifumi \\(blue archive\\), solo"
    assert line["tag_categories"]["general"] == ["my own tag", "solo"]
    assert line["tag_categories"]["character"] == ["hifumi \\(blue archive\\)"]
    assert line["post_id"] == gb.post_by_md5(first.stem)["id"]
    assert json.loads((out / "buckets.json").read_text())["resolution"] == [512, 512]
    assert video.name not in (out / "metadata.jsonl").read_text()  # trainers read images only
    assert list(json.loads((out / "tag_frequency.json").read_text())) == ["ds"]

    # without metadata.jsonl the posts come from the site by md5; an unknown image is named, exit 1
    (out / "metadata.jsonl").unlink()
    stray = Image.new("RGB", (40, 30), (1, 2, 3))
    buf = io.BytesIO()
    stray.save(buf, "PNG")
    stray_name = f"{hashlib.md5(buf.getvalue()).hexdigest()}.png"
    (out / stray_name).write_bytes(buf.getvalue())
    (out / stray_name.replace(".png", ".txt")).write_text("stray", encoding="utf-8")
    capsys.readouterr()
    assert main(["check", str(out), "--exports", "metadata_jsonl"]) == 1
    assert stray_name in capsys.readouterr().err
    lines = {json.loads(x)["file_name"]: json.loads(x) for x in (out / "metadata.jsonl").read_text().splitlines()}
    assert lines[stray_name]["post_id"] is None and lines[stray_name]["image_size"] == [40, 30]
    assert lines[first.name]["post_id"] == gb.post_by_md5(first.stem)["id"]
    assert lines[first.name]["tag_categories"]["character"] == ["hifumi \\(blue archive\\)"]


@pytest.mark.parametrize("flags", [["--resolution", "1000"], ["--exports", "nope"], ["--trigger", "a,b"],
                                   ["--dedupe-keep", "biggest"], ["--skip-variants", "siblings"]])
def test_bad_trainer_flags_exit_2_before_downloading(gb: GelbooruDouble, tmp_path: Path, flags: list[str],
                                                     capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["gelbooru", "1girl", "--out", str(tmp_path / "x"), "-q", *flags]) == 2
    assert capsys.readouterr().err.strip()
    assert gb.hits("post") == 0
