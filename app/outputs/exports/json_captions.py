"""``<md5>.json`` beside each image: the same object as its ``metadata.jsonl`` line."""

from __future__ import annotations

import json
from pathlib import Path

from app.files import write_text_atomic
from app.outputs.exports.plan import ExportPlan
from app.outputs.exports.records import ImageRecord


def write_image_json(folder: Path, record: ImageRecord) -> str:
    name = f"{record.md5}.json"
    write_text_atomic(folder / name, json.dumps(record.metadata(), ensure_ascii=False, indent=1) + "\n")
    return name


def write(plan: ExportPlan) -> list[str]:
    names = []
    for record in plan.records:
        name = f"{record.md5}.json"
        if name not in plan.prewritten:  # the same record, written while the image downloaded
            write_image_json(plan.folder, record)
        names.append(name)
    return names
