"""Streamed pages as readers get them: descrambled, JPEG or PNG, scaled to a width, cached on disk.

A reader pages back and forth, so every page it was sent is kept under ``<data>/opds-pages``: the
page at full size (``<chapter>/<index>.<ext>``) and each width asked for (``<index>-w<W>.<ext>``).
A cached page is read from disk; an uncached one costs one upstream image request, and a width of
a page already cached at full size costs no request at all.

An uncached page is answered from memory as soon as it is made and written to disk after the answer
(``PageStream`` keeps it in memory until then); every file appears whole (written aside, then
renamed), so a cached page is never half a page.
"""

from __future__ import annotations

import io
import os
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

from PIL import Image

from app.blocking import BlockingPool
from app.files import write_bytes_atomic
from app.outputs.opds import pixels
from app.sources.jm_stream import PageImage, descramble

JPEG_QUALITY = 90
KEEP_SECONDS = 24 * 3600  # a chapter whose pages were all fetched over a day ago leaves the cache
PRUNE_EVERY_SECONDS = 600.0
MEDIA_TYPES = {".jpg": "image/jpeg", ".png": "image/png"}
KEPT_BLOCKS = 4  # freed pictures whose memory Pillow keeps (keep_freed_pictures)


@dataclass(frozen=True)
class RenderedPage:
    path: Path  # where the page is cached: already, or once it is saved
    media_type: str
    body: bytes | None = None  # a page just made: its bytes, answered from memory while it is being saved


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
    size = (max_width, max(1, round(height * max_width / width)))
    if picture.mode not in ("RGB", "RGBA", "L", "LA"):
        picture = picture.convert("RGBA" if "transparency" in picture.info else "RGB")
    # A bilinear filter that widens with the reduction, as Pillow's does: a smaller page is
    # antialiased like with Lanczos (a little softer) at half its cost. (A 1200x1700 page to 1080
    # with Pillow, one core: bilinear 13 ms, 39 dB from Lanczos; bicubic 20 ms; Lanczos 28 ms; box
    # 9.5 ms but 23 dB on line art, as it drops or doubles whole pixels; nearest 0.7 ms, worse still.
    # Sharing Pillow's scaling between two threads in bands of rows saved up to 5 ms with an idle
    # second CPU, but cost 3-6 ms more CPU and lost time when that CPU was busy.)
    fast = pixels.scaled(picture, size)  # the same filter, natively (pixels.py)
    if fast is not None:
        return fast
    # reducing_gap first reduces a page 4 or more times too wide by a whole factor with a box filter
    return picture.resize(size, Image.Resampling.BILINEAR, reducing_gap=2.0)


def _open(body: bytes) -> Image.Image:
    """A still WebP (how JM sends pages) decoded natively into a buffer this thread keeps: the
    picture is done with before the thread renders its next page. Anything else opened by Pillow,
    which reads the header only until ``load``."""
    picture = pixels.decode_webp(body) if body[8:12] == b"WEBP" else None
    return picture if picture is not None else Image.open(io.BytesIO(body))


def render(page: PageImage, max_width: int | None) -> tuple[bytes, str]:
    """The page as readers get it: JPEG or PNG bytes (and their extension), descrambled, no wider
    than ``max_width``. An unscrambled JPEG or PNG that is narrow enough passes through unchanged."""
    as_is = _kind(page.body) if page.strips == 0 else None
    picture = _open(page.body)
    wider = max_width is not None and picture.width > max_width
    if as_is is not None and not wider:
        return page.body, as_is
    if max_width is not None and wider and page.strips == 0:
        # A JPEG decodes at 1/2, 1/4 or 1/8 of its size for almost nothing (never below the size
        # asked for; other formats ignore it). Not for a scrambled page: its strips are cut in
        # full-size rows.
        picture.draft(None, (max_width, max(1, round(picture.height * max_width / picture.width))))
    picture.load()
    whole = descramble(picture, page.strips)
    return _encode(_scaled(whole, max_width) if max_width is not None and wider else whole)


def keep_freed_pictures(blocks: int = KEPT_BLOCKS) -> None:
    """Let Pillow keep the memory of a few freed pictures for the next ones (process-wide).

    By default Pillow hands every freed picture's memory back to the system, and the next picture
    pays for it again in page faults: about 9,500 of them for a 1200x1700 page (decoded, scaled,
    encoded), a third of its decode time. Keeping ``blocks`` freed blocks (Pillow's blocks are at
    most 16 MB; these pictures take 7-8 MB each: the server stayed 35 MB larger after 30 such pages)
    costs that memory while idle, and album downloads' descrambling gains as well.
    ``PILLOW_BLOCKS_MAX``, when set, decides instead.
    """
    if "PILLOW_BLOCKS_MAX" not in os.environ:
        Image.core.set_blocks_max(max(blocks, Image.core.get_blocks_max()))


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

    def source_path(self, photo_id: str, index: int, strips: int) -> Path:
        """Where the page as the CDN sent it is kept (its strip count in the name)."""
        return self._folder(photo_id) / f"{index}.s{strips}.src"

    async def read_source(self, path: Path, strips: int, name: str) -> PageImage:
        return PageImage(await self.pool.run(path.read_bytes), strips, name)

    async def render(self, photo_id: str, index: int, page: PageImage, max_width: int | None) -> RenderedPage:
        """The page rendered in ``pool`` (decode, descramble, scale, encode), in memory: ``save``
        writes it."""
        stem = f"{index}" if max_width is None else f"{index}-w{max_width}"
        data, ext = await self.pool.run(render, page, max_width)
        return RenderedPage(self._folder(photo_id) / f"{stem}{ext}", MEDIA_TYPES[ext], data)

    async def save(self, photo_id: str, index: int, source: PageImage | None, page: RenderedPage | None) -> None:
        """Write a fetched source and a rendered page (in ``pool``); now and then prune the cache."""
        await self.pool.run(self._save, photo_id, index, source, page)

    def _save(self, photo_id: str, index: int, source: PageImage | None, page: RenderedPage | None) -> None:
        if time.monotonic() - self._pruned_at > PRUNE_EVERY_SECONDS:  # on the way: no timer of its own
            self._pruned_at = time.monotonic()
            self.prune()
        if source is not None:
            _write(self.source_path(photo_id, index, source.strips), source.body)
        if page is not None and page.body is not None:
            _write(page.path, page.body)
