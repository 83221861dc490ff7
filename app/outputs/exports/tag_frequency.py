"""``tag_frequency.json``: kohya's ``ss_tag_frequency`` shape, ``{"<name>": {"<tag>": <count>}}``.

The rule is kohya's: every caption split on ``,``, items stripped and lower-cased, empty ones skipped.
"""

from __future__ import annotations

import json
from collections import Counter

from app.files import write_text_atomic
from app.outputs.exports.plan import ExportPlan

FILE_NAME = "tag_frequency.json"


def tag_counts(captions: list[str]) -> dict[str, int]:
    counts: Counter[str] = Counter()
    for caption in captions:
        counts.update(item.strip().lower() for item in caption.split(",") if item.strip())
    return dict(sorted(counts.items(), key=lambda kv: (-kv[1], kv[0])))  # most used first, for people


def write(plan: ExportPlan) -> list[str]:
    doc = {plan.name: tag_counts([r.caption for r in plan.records])}
    write_text_atomic(plan.folder / FILE_NAME, json.dumps(doc, ensure_ascii=False, indent=1) + "\n")
    return [FILE_NAME]
