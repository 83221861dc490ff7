"""What goes into an album's archive, per format and layout, and what the archive is called.

* zip, ``flat`` (the default, the seed's layout that real clients read): every page at the top
  level, numbered continuously across chapters (``00001.webp``, ...), each with its own
  extension, plus ``cover.jpg``;
* zip, ``chapters``: one folder per chapter, ``NNN <chapter title>/00001.webp``, plus ``cover.jpg``;
* cbz and pdf: the pages alone, flat in reading order (a reader shows every image as a page, so
  no ``cover.jpg``: the first page is the front cover), described by a ``Book``.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from app.archives import FORMATS, ArchiveContent, Book
from app.storage import safe_component

if TYPE_CHECKING:
    from app.sources.album import DownloadedAlbum

Layout = Literal["flat", "chapters"]
LAYOUTS: tuple[Layout, ...] = ("flat", "chapters")
COVER_NAME = "cover.jpg"
JM_ALBUM_URL = "https://18comic.vip/album/{album_id}/"


def options_problem(fmt: str, layout: str) -> str | None:
    """Why a format and layout cannot go together, as a sentence (None when they can)."""
    if layout == "chapters" and fmt != "zip":
        return (f"layout 'chapters' puts chapters in folders, which only a zip has: a {fmt} is always one "
                "flat run of pages (with a bookmark or outline entry per chapter). Leave layout out, or ask for "
                "format 'zip'.")
    return None


def unknown_chapters_problem(album_id: str, wanted: tuple[str, ...], episodes: list[tuple[str, str]]) -> str | None:
    """A sentence naming the chapter ids the album does not have, and the ones it has (or None)."""
    known = {pid for pid, _title in episodes}
    unknown = [pid for pid in wanted if pid not in known]
    if not unknown:
        return None
    listing = ", ".join(f"{pid} ({title})" for pid, title in episodes[:20])
    more = f" and {len(episodes) - 20} more" if len(episodes) > 20 else ""
    which = f"chapter{'s' if len(unknown) > 1 else ''} {', '.join(unknown[:10])}"
    return (f"Album {album_id} has no {which}; its chapters are {listing}{more}. "
            f"Use the ids in chapters[].id of GET /v1/info/{album_id}.")


def archive_label(layout: Layout, chapters: tuple[str, ...] | None) -> str:
    """What tells this archive apart from the album's default one, in its download name."""
    parts: list[str] = []
    if layout != "flat":
        parts.append(layout)
    if chapters:
        listed = ",".join(chapters)
        parts.append("ch " + (listed if len(listed) <= 40 else listed[:37] + "..."))
    return f" ({'; '.join(parts)})" if parts else ""


def download_name_suffix(album_id: str, fmt: str, layout: Layout, chapters: tuple[str, ...] | None) -> str:
    """The end of the name a browser saves (and the CLI writes): ``[JM<id>]<label><extension>``."""
    return safe_component(f"[JM{album_id}]{archive_label(layout, chapters)}", max_length=80) + FORMATS[fmt].extension


def file_stem(album_id: str, layout: Layout, chapters: tuple[str, ...] | None) -> str:
    """A safe key prefix of the archive's file_name (the format is in the extension)."""
    stem = f"jm-{album_id}"
    if layout != "flat":
        stem += f"-{layout}"
    if chapters:
        stem += "-c" + hashlib.sha256(",".join(chapters).encode()).hexdigest()[:8]
    return stem


@dataclass
class AlbumArchive:
    content: ArchiveContent
    title: str
    file_stem: str
    download_name: str


def album_archive(album: DownloadedAlbum, fmt: str, layout: Layout,
                  chapters: tuple[str, ...] | None = None) -> AlbumArchive:
    title = album.title or f"JM{album.album_id}"
    if fmt == "zip":
        content = ArchiveContent(_zip_entries(album, layout))
    else:
        content = ArchiveContent(_flat_pages(album), _book(album, title))
    name = safe_component(title, max_length=150) + " " + download_name_suffix(album.album_id, fmt, layout, chapters)
    return AlbumArchive(content, title, file_stem(album.album_id, layout, chapters), name)


def library_books(album: DownloadedAlbum) -> list[tuple[str, ArchiveContent]]:
    """One CBZ per chapter for the reader library: (path under the library root, content), with
    ComicInfo Series = the album title, Number = the chapter's sort, Count = the album's chapters."""
    from app.outputs.library import album_paths

    title = album.title or f"JM{album.album_id}"
    paths = album_paths(title, album.album_id, [(c.sort, c.title) for c in album.chapters])
    books = []
    for path, chapter in zip(paths, album.chapters, strict=True):
        if not chapter.pages:
            continue
        entries = [(f"{n:05d}{page.suffix}", page) for n, page in enumerate(chapter.pages, start=1)]
        book = Book(title=chapter.title or title, series=title, number=str(chapter.sort),
                    count=album.chapter_count or len(album.chapters), writers=album.authors, tags=album.tags,
                    characters=album.characters, summary=album.description,
                    web=JM_ALBUM_URL.format(album_id=album.album_id))
        books.append((path, ArchiveContent(entries, book)))
    return books


def _flat_pages(album: DownloadedAlbum) -> list[tuple[str, Path]]:
    pages = [path for chapter in album.chapters for path in chapter.pages]
    return [(f"{number:05d}{path.suffix}", path) for number, path in enumerate(pages, start=1)]


def _zip_entries(album: DownloadedAlbum, layout: Layout) -> list[tuple[str, Path]]:
    entries: list[tuple[str, Path]] = [(COVER_NAME, album.cover)] if album.cover is not None else []
    if layout == "flat":
        return entries + _flat_pages(album)
    width = max(3, len(str(len(album.chapters))))
    for number, chapter in enumerate(album.chapters, start=1):
        folder = f"{number:0{width}d} {safe_component(chapter.title, fallback=chapter.photo_id, max_length=80)}"
        entries += [(f"{folder}/{index:05d}{path.suffix}", path) for index, path in enumerate(chapter.pages, 1)]
    return entries


def _book(album: DownloadedAlbum, title: str) -> Book:
    bookmarks: dict[int, str] = {}
    if len(album.chapters) > 1:
        first = 0
        for chapter in album.chapters:
            if chapter.pages:
                bookmarks[first] = chapter.title or chapter.photo_id
            first += len(chapter.pages)
    return Book(title=title, series=title, writers=album.authors, tags=album.tags, characters=album.characters,
                summary=album.description, web=JM_ALBUM_URL.format(album_id=album.album_id), bookmarks=bookmarks)
