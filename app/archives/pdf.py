"""PDF: one page per image in reading order, each page the size of its image.

img2pdf embeds JPEG and PNG pages without re-encoding them; other pictures are converted
first (see ``embeddable``). img2pdf keeps a whole document in memory, so each page becomes a
one-page PDF of its own; qpdf (through pikepdf, in a child process: ``app.archives.pdf_join``)
then joins them, copying the image data through untouched and streaming it from disk, and adds
the document info and one outline entry per chapter. Memory stays at about one page whatever
the album's size.
"""

from __future__ import annotations

import ctypes
import io
import json
import logging
import shutil
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

from app.archives.base import ArchiveContent, Book, check_cancel
from app.files import atomic_output

log = logging.getLogger("jmbooru.archives")

JPEG_QUALITY = 92
PNG_COMPRESS_LEVEL = 3
_PASSTHROUGH = {"JPEG", "PNG"}
_libc: ctypes.CDLL | None = None


def release_freed_memory(*, kept_pictures: bool = False) -> None:
    """Give the heap's free pages back to the OS (glibc's ``malloc_trim``; elsewhere nothing).

    Converting a big page frees tens of MB that glibc keeps in the converting thread's arena:
    measured on 5 MB pages, the server's RSS stayed ~50 MB higher after the conversions, and the
    qpdf child then came on top of it. With ``kept_pictures``, the freed pictures Pillow keeps for
    the next ones go too (``keep_freed_pictures``, which the server turns on for OPDS pages: up to
    four blocks of 16 MB, ~28 MB after a PDF of 5 MB pages, on top of which the qpdf child came).
    """
    global _libc
    if kept_pictures and "PIL.Image" in sys.modules:
        sys.modules["PIL.Image"].core.clear_cache()
    try:
        _libc = _libc or ctypes.CDLL("libc.so.6")
        _libc.malloc_trim(0)
    except (OSError, AttributeError):
        pass


def webp_is_lossless(path: Path) -> bool:
    """Whether a WebP file holds a lossless (VP8L) bitstream; walks the RIFF chunks up to it."""
    with open(path, "rb") as fh:
        header = fh.read(12)
        if header[:4] != b"RIFF" or header[8:12] != b"WEBP":
            return False
        while True:
            chunk = fh.read(8)
            if len(chunk) < 8:
                return False
            fourcc, size = chunk[:4], int.from_bytes(chunk[4:], "little")
            if fourcc in (b"VP8L", b"VP8 "):
                return fourcc == b"VP8L"
            fh.seek(size + (size & 1), io.SEEK_CUR)  # chunks are padded to an even size


def embeddable(path: Path) -> str | bytes:
    """A JPEG or PNG for img2pdf: the file itself when it already is one, else a conversion.

    A lossless WebP becomes a PNG (nothing lost). A lossy WebP (what JM serves, and what jmcomic
    writes after descrambling) becomes a JPEG at quality 92 without chroma subsampling: a PNG
    would only preserve the WebP's own artefacts at several times the size, while this JPEG is
    visually the same and keeps the PDF about the size of the album. Transparency is flattened
    onto white, the colour of the page; an animation contributes its first frame.
    """
    from PIL import Image

    with Image.open(path) as picture:
        if picture.format in _PASSTHROUGH:
            return str(path)
        lossless = picture.format != "WEBP" or webp_is_lossless(path)
        picture.seek(0)
        picture.load()
        if picture.mode in ("RGBA", "LA", "P", "PA"):
            frame = picture.convert("RGBA")
        else:
            frame = picture if picture.mode == "RGB" else picture.convert("RGB")  # no copy when already RGB
    if frame.mode == "RGBA":
        background = Image.new("RGB", frame.size, (255, 255, 255))
        background.paste(frame, mask=frame.getchannel("A"))
        frame = background
    buf = io.BytesIO()
    if lossless:
        frame.save(buf, "PNG", compress_level=PNG_COMPRESS_LEVEL)
    else:
        frame.save(buf, "JPEG", quality=JPEG_QUALITY, subsampling=0)
    return buf.getvalue()


def build_pdf(content: ArchiveContent, dest: Path, scratch: Path, cancel: threading.Event | None = None) -> int:
    import img2pdf

    book = content.book or Book(title=dest.stem)
    folder = scratch / f".pdf-{dest.name}"
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    try:
        one_inch_per_72_pixels = img2pdf.get_fixed_dpi_layout_fun((72, 72))  # 1 pixel = 1 point
        page_files = []
        for index, (_name, path) in enumerate(content.entries):
            check_cancel(cancel)
            page_file = folder / f"{index:06d}.pdf"
            with open(page_file, "wb") as out:
                img2pdf.convert(embeddable(path), layout_fun=one_inch_per_72_pixels, first_frame_only=True,
                                nodate=True, outputstream=out)
            page_files.append(str(page_file))
            release_freed_memory()
        # The pictures Pillow kept made the conversions cheaper; the join needs none of them, and
        # its child's memory comes on top of the server's.
        release_freed_memory(kept_pictures=True)
        check_cancel(cancel)
        with atomic_output(dest) as part:
            spec: dict[str, Any] = {"pages": page_files, "joined": str(folder / "joined.pdf"), "out": str(part),
                    "info": _document_info(book), "bookmarks": sorted(book.bookmarks.items())}
            _join_in_child(spec, folder / "join.json", cancel)
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    return dest.stat().st_size


def _document_info(book: Book) -> dict[str, str]:
    info = {"/Title": book.title, "/Creator": "jmbooru"}
    if book.writers:
        info["/Author"] = ", ".join(book.writers)
    if book.tags:
        info["/Keywords"] = ", ".join(book.tags)
    if book.summary:
        info["/Subject"] = book.summary
    return info


def _join_in_child(spec: dict[str, Any], spec_file: Path, cancel: threading.Event | None) -> None:
    spec_file.write_text(json.dumps(spec, ensure_ascii=False), encoding="utf-8")
    # The script itself, isolated (-I): the child imports json and pikepdf, not this package (5 MB less).
    script = Path(__file__).with_name("pdf_join.py")
    child = subprocess.Popen([sys.executable, "-I", str(script), str(spec_file)],
                             stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        while True:
            try:
                _, errors = child.communicate(timeout=0.1)
                break
            except subprocess.TimeoutExpired:
                check_cancel(cancel)
    except BaseException:
        child.kill()
        child.wait()
        raise
    if child.returncode != 0:
        log.error("pdf join failed exit=%s stderr=%s", child.returncode, errors.decode("utf-8", "replace")[-2000:])
        raise RuntimeError(f"joining the PDF pages failed (exit {child.returncode})")
