"""What every job runner gets and gives back."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Generic, Protocol, TypeVar

from app.archives import ArchiveContent, Book
from app.jobs.models import Job
from app.jobs.progress import ProgressTracker
from app.jobs.specs import JobSpec

S = TypeVar("S", bound=JobSpec)


@dataclass
class RunContext(Generic[S]):
    job: Job
    work_dir: Path
    progress: ProgressTracker
    spec: S  # the job's typed parameters (``job.params`` parsed by its kind's spec)


@dataclass
class LibraryBook:
    """A CBZ the job files into the reader library instead of a 30-minute archive."""

    relative_path: str  # under JMBOORU_LIBRARY_DIR, "/"-separated
    content: ArchiveContent


@dataclass
class RunOutput:
    entries: list[tuple[str, Path]]  # (name inside the archive, file on disk), in archive order
    title: str
    file_stem: str  # safe key prefix of the archive's file_name, e.g. "jm-350234"
    download_name: str  # the name a browser saves, e.g. "Some title [JM350234].zip"
    message: str = ""
    format: str = "zip"  # a name in app.archives.FORMATS
    book: Book | None = None  # what a book format (cbz, pdf) says about the pages
    library: list[LibraryBook] | None = None  # set: the job files these books and makes no archive
    skipped: list[dict[str, Any]] = field(default_factory=list)  # what was left out, {"post_id", "reason"}


class Runner(Protocol[S]):
    """A kind's runner, generic in its spec: it reads ``ctx.spec`` as that kind's typed spec."""

    async def run(self, ctx: RunContext[S]) -> RunOutput: ...
