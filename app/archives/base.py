"""What every archive builder takes and shares: the content, the book's metadata (their atomic output
is ``app.files.atomic_output``)."""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol


class BuildCancelled(Exception):
    """The job was cancelled while its archive was being built; the partial file is gone."""


@dataclass
class Book:
    """What readers show about an album (ComicInfo.xml for CBZ, the document info and outline for PDF)."""

    title: str
    series: str = ""
    number: str = ""  # the book's place in its series (a chapter's sort, 1 for a pool)
    count: int = 0  # books in the series (an album's chapters), 0: unknown
    writers: list[str] = field(default_factory=list)
    tags: list[str] = field(default_factory=list)
    characters: list[str] = field(default_factory=list)
    summary: str = ""
    web: str = ""
    # 0-based page index -> chapter title, at the first page of each chapter of a multi-chapter album
    bookmarks: dict[int, str] = field(default_factory=dict)


@dataclass
class ArchiveContent:
    """The files of an archive in order: ``(name inside the archive, file on disk)``.

    For a book format (CBZ, PDF) every entry is a page in reading order and ``book`` describes it.
    """

    entries: list[tuple[str, Path]]
    book: Book | None = None


class Builder(Protocol):
    def __call__(self, content: ArchiveContent, dest: Path, scratch: Path,
                 cancel: threading.Event | None = None) -> int:
        """Write ``content`` to ``dest`` atomically (``scratch`` is a private folder for temporary
        files); returns the archive's size. Raises ``BuildCancelled`` once ``cancel`` is set."""
        ...


@dataclass(frozen=True)
class ArchiveFormat:
    name: str  # what clients ask for: "zip", "cbz", "pdf"
    extension: str  # with the dot: ".zip"
    media_type: str
    build: Builder
    description: str = ""


def check_cancel(cancel: threading.Event | None) -> None:
    if cancel is not None and cancel.is_set():
        raise BuildCancelled("the archive was cancelled while being built")
