"""What every job runner gets and gives back."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from app.jobs.models import Job
from app.jobs.progress import ProgressTracker


@dataclass
class RunContext:
    job: Job
    work_dir: Path
    progress: ProgressTracker


@dataclass
class RunOutput:
    entries: list[tuple[str, Path]]  # (name inside the archive, file on disk), in archive order
    title: str
    file_stem: str  # safe key prefix of the archive's file_name, e.g. "jm-350234"
    download_name: str  # the name a browser saves, e.g. "Some title [JM350234].zip"
    message: str = ""


class Runner(Protocol):
    async def run(self, ctx: RunContext) -> RunOutput: ...
