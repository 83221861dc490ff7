"""Dataset exports: one module per export, and ``EXPORTS``, the one list the API, CLI, page and tests read.

Each writer takes an ``ExportPlan`` (the folder and its images after ``skip_variants`` and ``dedupe``)
and returns the file names it wrote. Writers block (they write files): call them off the event loop.
"""

from __future__ import annotations

from collections.abc import Callable

from app.outputs.exports import buckets, json_captions, kohya_toml, metadata_jsonl, tag_frequency
from app.outputs.exports.options import EXPORT_NAMES
from app.outputs.exports.plan import ExportPlan

ExportWriter = Callable[[ExportPlan], list[str]]

EXPORTS: dict[str, ExportWriter] = {
    "metadata_jsonl": metadata_jsonl.write,
    "json_captions": json_captions.write,
    "kohya_toml": kohya_toml.write,
    "tag_frequency": tag_frequency.write,
    "buckets": buckets.write,
}
assert tuple(EXPORTS) == EXPORT_NAMES  # the options validate against the same names

EXPORT_HELP: dict[str, str] = {
    "metadata_jsonl": "metadata.jsonl: captions, sizes and tag categories for Hugging Face, kohya and musubi-tuner",
    "json_captions": "<md5>.json beside each image: the same record per image",
    "kohya_toml": "dataset_config.toml: a kohya-ss --dataset_config with buckets, repeats and keep_tokens",
    "tag_frequency": "tag_frequency.json: how often each caption tag occurs (kohya's ss_tag_frequency)",
    "buckets": "buckets.json: the aspect-ratio bucket kohya will put each image in",
}


def write_exports(plan: ExportPlan, names: tuple[str, ...]) -> list[str]:
    written: list[str] = []
    for name in names:
        written += EXPORTS[name](plan)
    return written


__all__ = ["EXPORTS", "EXPORT_HELP", "ExportPlan", "write_exports"]
