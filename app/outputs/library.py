"""The reader library: CBZ files filed into a Komga/Kavita folder tree (library.md).

One folder per series, one file per book::

    <root>/JM/<Album>/<Album> - c001 <chapter title>.cbz
    <root>/<Site> Pools/<Pool>/<Pool>.cbz

Names follow one rule that is safe on every file system, and no name can leave the root. Files are
written to a hidden temporary name beside their final one and renamed into place, so a reader
scanning the folder never sees half a book; the same book filed again replaces the file in place.
"""

from __future__ import annotations

import os
import re
import shutil
from dataclasses import dataclass
from pathlib import Path

from app.files import atomic_output, temp_beside

_FORBIDDEN = re.compile(r'[/\\:*?"<>|\x00-\x1f\x7f]')
_SPACES = re.compile(r"\s+")
MAX_NAME = 100


def library_name(title: str, fallback_id: str | int) -> str:
    """A title as a file or folder name (library.md "Names")."""
    name = _SPACES.sub(" ", _FORBIDDEN.sub("_", title))
    name = name.strip(" .")
    name = name[:MAX_NAME].strip(" .")
    return name or f"Untitled {fallback_id}"


def chapter_file(album_title: str, album_id: str, sort: int, chapter_title: str) -> str:
    """``<Album> - c001 <chapter title>.cbz``; the title is left out when empty or the album's own."""
    album = library_name(album_title, album_id)
    name = f"{album} - c{sort:03d}"
    if chapter_title.strip() and chapter_title.strip() != album_title.strip():
        name += " " + library_name(chapter_title, sort)
    return name + ".cbz"


def album_paths(album_title: str, album_id: str, chapters: list[tuple[int, str]]) -> list[str]:
    """Relative paths of an album's chapter books, ``/``-separated, one per (sort, chapter title)."""
    folder = library_name(album_title, album_id)
    return [f"JM/{folder}/{chapter_file(album_title, album_id, sort, title)}" for sort, title in chapters]


def pool_path(site_name: str, pool_name: str, pool_id: int) -> str:
    folder = library_name(pool_name, pool_id)
    return f"{library_name(site_name, 'site')} Pools/{folder}/{folder}.cbz"


class OutsideLibrary(ValueError):
    """A path that would leave the library root (never produced by the rules above)."""


@dataclass(frozen=True)
class Library:
    root: Path

    def target(self, relative: str) -> Path:
        path = (self.root / relative).resolve()
        root = self.root.resolve()
        if path == root or root not in path.parents:
            raise OutsideLibrary(relative)
        return path

    def file(self, source: Path, relative: str) -> Path:
        """Copy ``source`` to ``relative`` under the root, atomically, replacing what is there. Blocking."""
        target = self.target(relative)
        target.parent.mkdir(parents=True, exist_ok=True)
        with atomic_output(target, temp_beside(target)) as tmp:
            try:
                os.link(source, tmp)  # same file system: no copy at all
            except OSError:
                shutil.copyfile(source, tmp)
            os.chmod(tmp, 0o644)
        return target
