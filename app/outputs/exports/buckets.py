"""``buckets.json``: the aspect-ratio bucket kohya puts each image in, with the toml's own settings.

kohya (``bucket_no_upscale = false``) builds its bucket set once: the square of ``resolution``'s area
and, for every width from the minimum to the maximum in steps, the tallest height within that area
(and its transpose). An image goes to the bucket of its own size when there is one, else to the first
bucket (in sorted order) with the closest aspect ratio.
"""

from __future__ import annotations

import json
import math
from collections import Counter

from app.files import write_text_atomic
from app.outputs.exports.kohya_toml import BUCKET_RESO_STEPS, MIN_BUCKET_RESO
from app.outputs.exports.plan import ExportPlan

FILE_NAME = "buckets.json"
Reso = tuple[int, int]


def bucket_resolutions(resolution: int, min_size: int, max_size: int, step: int) -> list[Reso]:
    area = resolution * resolution
    found = {(int(math.sqrt(area) // step) * step,) * 2}
    for width in range(min_size, max_size + 1, step):
        height = min(max_size, int((area // width) // step) * step)
        if height >= min_size:
            found.update({(width, height), (height, width)})
    return sorted(found)


def select_bucket(width: int, height: int, buckets: list[Reso]) -> Reso:
    if (width, height) in buckets:
        return (width, height)
    ratio = width / height
    return min(buckets, key=lambda b: abs(b[0] / b[1] - ratio))  # min keeps the first of equals


def write(plan: ExportPlan) -> list[str]:
    resolution, top = plan.options.resolution, plan.max_bucket_reso
    buckets = bucket_resolutions(resolution, MIN_BUCKET_RESO, top, BUCKET_RESO_STEPS)
    images = {r.file: select_bucket(r.width, r.height, buckets) for r in plan.records if r.width and r.height}
    counts = Counter(images.values())
    doc = {
        "resolution": [resolution, resolution], "min_bucket_reso": MIN_BUCKET_RESO, "max_bucket_reso": top,
        "bucket_reso_steps": BUCKET_RESO_STEPS, "bucket_no_upscale": False,
        "images": {name: list(reso) for name, reso in images.items()},
        "buckets": [{"resolution": list(reso), "count": counts[reso]} for reso in sorted(counts)],
    }
    write_text_atomic(plan.folder / FILE_NAME, json.dumps(doc, indent=1) + "\n")
    return [FILE_NAME]
