"""CBZ: the pages, flat in reading order, plus ``ComicInfo.xml``; a zip that comic readers open."""

from __future__ import annotations

import threading
import zipfile
from pathlib import Path

from app.archives.base import ArchiveContent, Book
from app.archives.comicinfo import COMIC_INFO_NAME, comic_info_xml
from app.archives.zip import write_members
from app.files import atomic_output


def build_cbz(content: ArchiveContent, dest: Path, scratch: Path, cancel: threading.Event | None = None) -> int:
    book = content.book or Book(title=dest.stem)
    info = comic_info_xml(book, [path for _name, path in content.entries])
    with atomic_output(dest) as part, \
            zipfile.ZipFile(part, "w", compression=zipfile.ZIP_STORED, allowZip64=True) as zf:
        write_members(zf, content.entries, cancel=cancel)
        zf.writestr(COMIC_INFO_NAME, info, compress_type=zipfile.ZIP_DEFLATED)
    return dest.stat().st_size
