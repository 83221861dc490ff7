"""The archive formats a finished job can be packed into: a registry by name and by file name.

Every builder streams files from disk into ``<dest>.part`` and renames it when complete, so
memory stays flat in the archive's size and nobody is ever served half an archive. The book
formats' libraries (img2pdf, pikepdf) are imported only when a PDF is built.
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import TYPE_CHECKING

from app.archives.base import ArchiveContent, ArchiveFormat, Book, BuildCancelled
from app.archives.cbz import build_cbz
from app.archives.pdf import build_pdf
from app.archives.zip import build_zip, build_zip_archive
from app.files import atomic_output

if TYPE_CHECKING:
    from app.blocking import BlockingPool

__all__ = [
    "FORMATS", "ArchiveContent", "ArchiveFormat", "Book", "BuildCancelled", "archive_file_name",
    "archive_format", "archive_owner", "atomic_output", "build_archive", "build_zip", "format_for_file",
]

ZIP = ArchiveFormat("zip", ".zip", "application/zip", build_zip_archive,
                    "a zip of the files (for albums: pages, plus cover.jpg)")
CBZ = ArchiveFormat("cbz", ".cbz", "application/vnd.comicbook+zip", build_cbz,
                    "a comic book zip: pages flat in reading order plus ComicInfo.xml")
PDF = ArchiveFormat("pdf", ".pdf", "application/pdf", build_pdf,
                    "one page per image, each page the size of its image, an outline entry per chapter")

# The one list of archive formats: the API's enums, GET /v1/formats, the CLI's choices and the web
# page all read it. A new format is a builder module plus one entry here.
FORMATS: dict[str, ArchiveFormat] = {f.name: f for f in (ZIP, CBZ, PDF)}



def archive_format(name: str) -> ArchiveFormat:
    return FORMATS[name]


def format_for_file(file_name: str) -> ArchiveFormat | None:
    name = file_name.removesuffix(".part").lower()
    return next((f for f in FORMATS.values() if name.endswith(f.extension)), None)


def archive_file_name(stem: str, job_id: str, fmt: ArchiveFormat) -> str:
    """``<stem>-<job id[:10]><extension>``: the job's archive in the archive folder."""
    return f"{stem}-{job_id[:10]}{fmt.extension}"


def archive_owner(file_name: str) -> str | None:
    """The job id prefix in an archive's file name (``.part`` included), or None for a foreign file."""
    fmt = format_for_file(file_name)
    if fmt is None:
        return None
    stem = file_name.removesuffix(".part")[: -len(fmt.extension)]
    return stem.rsplit("-", 1)[-1] if "-" in stem else None


def _build_into(fmt: ArchiveFormat, content: ArchiveContent, dest: Path, scratch: Path,
                cancel: threading.Event) -> int:
    dest.parent.mkdir(parents=True, exist_ok=True)
    return fmt.build(content, dest, scratch, cancel)


async def build_archive(pool: BlockingPool, fmt: ArchiveFormat, content: ArchiveContent, dest: Path,
                        scratch: Path) -> int:
    """Build in ``pool`` (its folder made there too, in the same hop); a cancelled caller stops the
    builder and waits until its partial file is gone."""
    import asyncio  # here: the registry itself is read by the command line's --help, which needs no loop

    cancel = threading.Event()
    future = asyncio.ensure_future(pool.run(_build_into, fmt, content, dest, scratch, cancel))
    try:
        return await asyncio.shield(future)
    except asyncio.CancelledError:
        cancel.set()
        await asyncio.wait([future])
        if not future.cancelled():
            future.exception()  # retrieved: BuildCancelled is the expected ending
        raise
