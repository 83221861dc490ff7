"""What every job runner gets and gives back."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from app.archives import Book
from app.jobs.models import Job
from app.jobs.progress import ProgressTracker
from app.jobs.specs import JobSpec


@dataclass
class RunContext:
    job: Job
    work_dir: Path
    progress: ProgressTracker
    spec: JobSpec  # the job's typed parameters (``job.params`` parsed)


@dataclass
class RunOutput:
    entries: list[tuple[str, Path]]  # (name inside the archive, file on disk), in archive order
    title: str
    file_stem: str  # safe key prefix of the archive's file_name, e.g. "jm-350234"
    download_name: str  # the name a browser saves, e.g. "Some title [JM350234].zip"
    message: str = ""
    format: str = "zip"  # a name in app.archives.FORMATS
    book: Book | None = None  # what a book format (cbz, pdf) says about the pages


class Runner(Protocol):
    async def run(self, ctx: RunContext) -> RunOutput: ...
