"""``<md5>.json`` beside each image: the same object as its ``metadata.jsonl`` line."""

from __future__ import annotations

import json

from app.outputs.exports.plan import ExportPlan
from app.sources.dataset import write_text_atomic


def write(plan: ExportPlan) -> list[str]:
    names = []
    for record in plan.records:
        name = f"{record.md5}.json"
        write_text_atomic(plan.folder / name, json.dumps(record.metadata(), ensure_ascii=False, indent=1) + "\n")
        names.append(name)
    return names
