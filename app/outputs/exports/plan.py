"""What every export writer gets: the folder, its images (after skip_variants and dedupe) and the options."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from app.outputs.exports.options import ExportOptions
from app.outputs.exports.records import ImageRecord


@dataclass(slots=True)
class ExportPlan:
    folder: Path
    records: list[ImageRecord]  # sorted by file name
    options: ExportOptions
    image_dir: str  # export_options.image_dir, else the CLI's absolute folder, else "." in an archive
    name: str  # the dataset's name in tag_frequency.json
    prewritten: frozenset[str] = frozenset()  # <md5>.json files written while the images downloaded

    @property
    def max_bucket_reso(self) -> int:
        return 2 * self.options.resolution


def dataset_name(options: ExportOptions, fallback: str) -> str:
    """The last part of ``image_dir`` when given, else ``fallback`` (the CLI's folder, the archive's name)."""
    if options.image_dir:
        parts = [p for p in re.split(r"[\\/]+", options.image_dir.strip()) if p]
        if parts:
            return parts[-1]
    return fallback
