"""Zip archives, stored (images are already compressed), streamed member by member."""

from __future__ import annotations

import shutil
import threading
import zipfile
from collections.abc import Callable, Iterable
from pathlib import Path

from app.archives.base import ArchiveContent, check_cancel
from app.files import atomic_output

COPY_CHUNK = 1024 * 1024


def write_members(zf: zipfile.ZipFile, entries: Iterable[tuple[str, Path]], *,
                  cancel: threading.Event | None = None, on_file: Callable[[int], None] | None = None) -> None:
    """Copy files into an open zip in 1 MB chunks: memory stays flat whatever their size."""
    for arcname, path in entries:
        check_cancel(cancel)
        info = zipfile.ZipInfo.from_file(path, arcname)
        info.compress_type = zipfile.ZIP_STORED
        with open(path, "rb") as src, zf.open(info, "w", force_zip64=info.file_size > 2**31) as out:
            shutil.copyfileobj(src, out, COPY_CHUNK)
        if on_file is not None:
            on_file(info.file_size)


def build_zip(entries: Iterable[tuple[str, Path]], dest: Path, *, cancel: threading.Event | None = None,
              on_file: Callable[[int], None] | None = None) -> int:
    """Write ``entries`` (archive name, file) to ``dest`` atomically; returns the archive's size."""
    with atomic_output(dest) as part, \
            zipfile.ZipFile(part, "w", compression=zipfile.ZIP_STORED, allowZip64=True) as zf:
        write_members(zf, entries, cancel=cancel, on_file=on_file)
    return dest.stat().st_size


def build_zip_archive(content: ArchiveContent, dest: Path, scratch: Path,
                      cancel: threading.Event | None = None) -> int:
    return build_zip(content.entries, dest, cancel=cancel)
