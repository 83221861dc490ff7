"""``metadata.jsonl``: Hugging Face imagefolder's captions, kohya fine-tuning and musubi-tuner JSONL."""

from __future__ import annotations

import json

from app.files import write_text_atomic
from app.outputs.exports.plan import ExportPlan

FILE_NAME = "metadata.jsonl"


def write(plan: ExportPlan) -> list[str]:
    lines = [json.dumps(r.metadata(), ensure_ascii=False) + "\n" for r in plan.records]
    write_text_atomic(plan.folder / FILE_NAME, "".join(lines))
    return [FILE_NAME]
