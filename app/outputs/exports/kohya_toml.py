"""``dataset_config.toml``: a kohya-ss sd-scripts ``--dataset_config`` in the DreamBooth form.

One ``[[datasets]]`` with one subset that reads the ``.txt`` captions from ``image_dir`` (no
``metadata_file``). Only keys kohya's ``ConfigSanitizer`` accepts at the level they sit at.
"""

from __future__ import annotations

import json

from app.files import write_text_atomic
from app.outputs.exports.plan import ExportPlan

FILE_NAME = "dataset_config.toml"
MIN_BUCKET_RESO = 256
BUCKET_RESO_STEPS = 64


def toml_string(value: str) -> str:
    """A TOML basic string. JSON's escapes are TOML's, except DEL, which TOML wants escaped too."""
    return json.dumps(value, ensure_ascii=False).replace("\x7f", "\\u007F")


def render(plan: ExportPlan) -> str:
    o = plan.options
    lines = [
        "# kohya-ss sd-scripts dataset config, written by jmbooru: train with --dataset_config dataset_config.toml",
        "[general]",
        "enable_bucket = true",
        f"resolution = {o.resolution}",
        f"min_bucket_reso = {MIN_BUCKET_RESO}",
        f"max_bucket_reso = {plan.max_bucket_reso}",
        f"bucket_reso_steps = {BUCKET_RESO_STEPS}",
        "bucket_no_upscale = false",
        'caption_extension = ".txt"',
        "shuffle_caption = true",
        f"keep_tokens = {o.effective_keep_tokens}",
        "",
        "[[datasets]]",
        "",
        "  [[datasets.subsets]]",
    ]
    if plan.image_dir == ".":
        lines.append('  # "." is the folder kohya is started in: start it from this dataset\'s folder, or ask '
                     "jmbooru for export_options.image_dir (the folder you unpack this archive into)")
    lines += [f"  image_dir = {toml_string(plan.image_dir)}", f"  num_repeats = {o.num_repeats}", ""]
    return "\n".join(lines)


def write(plan: ExportPlan) -> list[str]:
    write_text_atomic(plan.folder / FILE_NAME, render(plan))
    return [FILE_NAME]
