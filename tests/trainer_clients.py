"""What the trainers that read jmbooru's exports accept, re-derived in the tests from their sources.

kohya-ss/sd-scripts is not a package, so nothing of it is imported or copied: the schema below is
written from reading ``library/config_util.py`` (``ConfigSanitizer``: which keys each level accepts,
with which types, checked by voluptuous as kohya does), and the bucket and tag-frequency arithmetic
from ``BucketManager``/``make_bucket_resolutions`` and ``set_tag_frequency`` in ``library/train_util.py``.
"""

from __future__ import annotations

import math
from typing import Any

import voluptuous
from voluptuous import Any as AnyOf
from voluptuous import ExactSequence, Required, Schema

# ConfigSanitizer's key groups (types as kohya declares them).
SUBSET_ASCENDABLE = {
    "color_aug": bool, "face_crop_aug_range": ExactSequence([float, float]), "flip_aug": bool,
    "num_repeats": int, "random_crop": bool, "shuffle_caption": bool, "keep_tokens": int,
    "keep_tokens_separator": str, "secondary_separator": str, "enable_wildcard": bool,
    "token_warmup_min": int, "token_warmup_step": AnyOf(float, int), "caption_prefix": str, "caption_suffix": str,
}
DROPOUT_ASCENDABLE = {"caption_dropout_every_n_epochs": int, "caption_dropout_rate": AnyOf(float, int),
                      "caption_tag_dropout_rate": AnyOf(float, int)}
DREAMBOOTH_SUBSET_ASCENDABLE = {"caption_extension": str, "class_tokens": str, "cache_info": bool}
DREAMBOOTH_SUBSET_DISTINCT = {Required("image_dir"): str, "is_reg": bool}
FINETUNING_SUBSET_DISTINCT = {Required("metadata_file"): str, "image_dir": str}
DATASET_ASCENDABLE = {
    "batch_size": int, "bucket_no_upscale": bool, "bucket_reso_steps": int, "enable_bucket": bool,
    "max_bucket_reso": int, "min_bucket_reso": int, "resolution": AnyOf(int, ExactSequence([int, int])),
    "network_multiplier": float,
}


def kohya_config_validator(*, finetuning: bool, dropout: bool = True) -> Schema:
    """``ConfigSanitizer(support_dreambooth=True, support_finetuning=finetuning, ...).user_config_validator``."""
    dropout_keys = DROPOUT_ASCENDABLE if dropout else {}
    db_subset = {**SUBSET_ASCENDABLE, **DREAMBOOTH_SUBSET_DISTINCT, **DREAMBOOTH_SUBSET_ASCENDABLE, **dropout_keys}
    ft_subset = {**SUBSET_ASCENDABLE, **FINETUNING_SUBSET_DISTINCT, **dropout_keys}
    db_dataset = {**DATASET_ASCENDABLE, **SUBSET_ASCENDABLE, **DREAMBOOTH_SUBSET_ASCENDABLE, **dropout_keys,
                  "subsets": [db_subset]}
    ft_dataset = {**DATASET_ASCENDABLE, **SUBSET_ASCENDABLE, **dropout_keys, "subsets": [ft_subset]}
    dataset: Any = Schema(db_dataset)
    if finetuning:
        def flex(config: dict[str, Any]) -> Any:  # kohya picks the form by whether subsets name a metadata_file
            subsets = config.get("subsets", [])
            if all("metadata_file" in s for s in subsets):
                return Schema(ft_dataset)(config)
            if all("metadata_file" not in s for s in subsets):
                return Schema(db_dataset)(config)
            raise voluptuous.Invalid("DreamBooth and fine tuning subsets cannot be mixed")

        dataset = flex
    general = {**DATASET_ASCENDABLE, **SUBSET_ASCENDABLE, **DREAMBOOTH_SUBSET_ASCENDABLE, **dropout_keys}
    return Schema({"general": general, "datasets": [dataset]})


def resolved(config: dict[str, Any], key: str) -> Any:
    """The value kohya's BlueprintGenerator finds for a subset key: subset, then dataset, then general."""
    subset = config["datasets"][0]["subsets"][0]
    for level in (subset, config["datasets"][0], config.get("general", {})):
        if level.get(key) is not None:
            return level[key]
    return None


def kohya_buckets(resolution: int, min_size: int, max_size: int, steps: int) -> list[tuple[int, int]]:
    """make_bucket_resolutions: the square of the area, and per width the tallest height in the area."""
    area = resolution * resolution
    resos = set()
    side = int(math.sqrt(area) // steps) * steps
    resos.add((side, side))
    width = min_size
    while width <= max_size:
        height = min(max_size, int((area // width) // steps) * steps)
        if height >= min_size:
            resos.add((width, height))
            resos.add((height, width))
        width += steps
    return sorted(resos)


def kohya_select_bucket(width: int, height: int, resos: list[tuple[int, int]]) -> tuple[int, int]:
    """BucketManager.select_bucket with no_upscale False: the image's own size if it is a bucket, else
    numpy's argmin (first of equals) of the aspect-ratio error."""
    import numpy as np

    if (width, height) in set(resos):
        return (width, height)
    ratios = np.array([w / h for w, h in resos])
    return resos[int(np.abs(ratios - width / height).argmin())]


def kohya_tag_frequency(captions: list[str]) -> dict[str, int]:
    """set_tag_frequency: split on ",", strip, skip empty, lower-case, count."""
    counts: dict[str, int] = {}
    for caption in captions:
        for tag in caption.split(","):
            tag = tag.strip()
            if tag:
                tag = tag.lower()
                counts[tag] = counts.get(tag, 0) + 1
    return counts
