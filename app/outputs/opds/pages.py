"""Streamed pages as readers get them: descrambled, JPEG or PNG, scaled to a width, cached on disk.

A reader pages back and forth, so every page it was sent is kept under ``<data>/opds-pages``: the
page at full size (``<chapter>/<index>.<ext>``) and each width asked for (``<index>-w<W>.<ext>``).
A cached page is read from disk; an uncached one costs one upstream image request, and a width of
a page already cached at full size costs no request at all.
"""

from __future__ import annotations

import io
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

from PIL import Image

from app.blocking import BlockingPool
from app.files import write_bytes_atomic
from app.sources.jm_stream import PageImage, open_page

JPEG_QUALITY = 90
KEEP_SECONDS = 24 * 3600  # a chapter whose pages were all fetched over a day ago leaves the cache
PRUNE_EVERY_SECONDS = 600.0
MEDIA_TYPES = {".jpg": "image/jpeg", ".png": "image/png"}


@dataclass(frozen=True)
class RenderedPage:
    path: Path
    media_type: str


def _kind(body: bytes) -> str | None:
    """The extension of bytes a reader can show as they are (JPEG, PNG), else None."""
    if body.startswith(b"\xff\xd8\xff"):
        return ".jpg"
    if body.startswith(b"\x89PNG\r\n\x1a\n"):
        return ".png"
    return None


def _encode(picture: Image.Image) -> tuple[bytes, str]:
    """JPEG (fast to encode and small), or PNG when the page has transparency to keep."""
    buffer = io.BytesIO()
    if picture.mode in ("RGBA", "LA") or (picture.mode == "P" and "transparency" in picture.info):
        picture.save(buffer, "PNG", compress_level=1)
        return buffer.getvalue(), ".png"
    if picture.mode not in ("RGB", "L"):
        picture = picture.convert("RGB")
    picture.save(buffer, "JPEG", quality=JPEG_QUALITY)
    return buffer.getvalue(), ".jpg"


def _scaled(picture: Image.Image, max_width: int) -> Image.Image:
    width, height = picture.size
    if width <= max_width:
        return picture
    new_height = max(1, round(height * max_width / width))
    if picture.mode not in ("RGB", "RGBA", "L", "LA"):
        picture = picture.convert("RGBA" if "transparency" in picture.info else "RGB")
    # Pillow's bilinear filter widens with the reduction, so a smaller page is antialiased like with
    # Lanczos (a little softer) at half its cost; reducing_gap first halves big pages with a box filter.
    return picture.resize((max_width, new_height), Image.Resampling.BILINEAR, reducing_gap=2.0)


def _write(path: Path, data: bytes) -> None:
    """Atomically: a reader never sees half a page."""
    path.parent.mkdir(parents=True, exist_ok=True)
    write_bytes_atomic(path, data)


class PageCache:
    """Rendered pages on disk, and the Pillow work that makes them (in ``pool``, off the loop).

    The page as the CDN sent it is kept too (``<index>.s<strips>.src``), so another width of a
    page already seen costs no upstream request.
    """

    def __init__(self, root: Path, pool: BlockingPool, keep_seconds: float = KEEP_SECONDS) -> None:
        self.root = root
        self.pool = pool
        self.keep_seconds = keep_seconds
        self._pruned_at = 0.0

    def prune(self, now: float | None = None) -> int:
        """Remove chapters whose newest page was written more than ``keep_seconds`` ago; returns
        how many chapters went."""
        now = time.time() if now is None else now
        removed = 0
        for folder in self.root.glob("*/") if self.root.is_dir() else ():
            try:
                newest = max((p.stat().st_mtime for p in folder.iterdir()), default=folder.stat().st_mtime)
            except OSError:
                continue
            if now - newest > self.keep_seconds:
                shutil.rmtree(folder, ignore_errors=True)
                removed += 1
        return removed

    def _folder(self, photo_id: str) -> Path:
        return self.root / photo_id

    def find(self, photo_id: str, index: int, max_width: int | None) -> RenderedPage | None:
        """A cached rendering, if there is one (a stat or two: cheap enough for the loop)."""
        stem = f"{index}" if max_width is None else f"{index}-w{max_width}"
        folder = self._folder(photo_id)
        for ext, media_type in MEDIA_TYPES.items():
            path = folder / f"{stem}{ext}"
            if path.is_file():
                return RenderedPage(path, media_type)
        return None

    async def source(self, photo_id: str, index: int) -> PageImage | None:
        return await self.pool.run(self._read_source, photo_id, index)

    def _read_source(self, photo_id: str, index: int) -> PageImage | None:
        for path in self._folder(photo_id).glob(f"{index}.s*.src"):
            strips = int(path.name.split(".")[1][1:])
            return PageImage(path.read_bytes(), strips, path.name)
        return None

    async def render(self, photo_id: str, index: int, page: PageImage, max_width: int | None,
                     *, keep_source: bool) -> RenderedPage:
        return await self.pool.run(self._render, photo_id, index, page, max_width, keep_source)

    def _render(self, photo_id: str, index: int, page: PageImage, max_width: int | None,
                keep_source: bool) -> RenderedPage:
        if time.monotonic() - self._pruned_at > PRUNE_EVERY_SECONDS:  # on the way: no timer of its own
            self._pruned_at = time.monotonic()
            self.prune()
        folder = self._folder(photo_id)
        if keep_source:
            _write(folder / f"{index}.s{page.strips}.src", page.body)
        stem = f"{index}" if max_width is None else f"{index}-w{max_width}"
        ext = _kind(page.body) if page.strips == 0 else None
        data = page.body
        if ext is None or max_width is not None:
            picture = open_page(page)
            if max_width is not None and picture.width > max_width:
                data, ext = _encode(_scaled(picture, max_width))
            elif ext is None:
                data, ext = _encode(picture)
        assert ext is not None
        path = folder / f"{stem}{ext}"
        _write(path, data)
        return RenderedPage(path, MEDIA_TYPES[ext])
