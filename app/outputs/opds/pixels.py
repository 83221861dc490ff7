"""Decoding and scaling streamed pages faster than Pillow alone, where native packages allow.

An uncached page is decoded, perhaps descrambled, scaled and encoded while a reader waits. Two
steps cost most of that with Pillow alone, both in the render threads of ``app.outputs.opds.pages``:

- **WebP decoding.** Pillow decodes WebP through libwebp's animation decoder, which allocates two
  canvases for every picture, hands the frame over as a ``bytes`` copy, and Pillow copies it again.
  In a worker thread that is fresh memory for every page (glibc hands large blocks back): about
  2,500 page faults and twice the decode time. ``decode_webp`` has libwebp (the ``webp`` package)
  decode a still picture straight into a buffer its thread keeps for the next page.
- **Scaling.** ``scaled`` runs Pillow's own bilinear filter through fast_image_resize (the
  ``cykooz.resizer`` package: Rust, SIMD), about five times faster.

Where a package has no wheel (see pyproject.toml), or for what it does not take (animated WebP, WebP
with a colour profile, LA pictures), Pillow does the work: the same pictures, more slowly.
"""

from __future__ import annotations

import threading
from typing import Any

from PIL import Image

# Kept per render thread (two): a 1200x1700 page takes 8 MB as RGBA. A larger picture (a long
# webtoon strip) gets a buffer of its own, freed with it, so the server does not stay that large.
KEPT_BUFFER_BYTES = 16 * 1024 * 1024


class _Native(threading.local):
    """Per render thread: a resizer (it keeps buffers between calls and is not shared) and the
    buffer WebP pages are decoded into."""

    resizer: Any = None
    options: Any = None
    buffer: bytearray | None = None

    def scaler(self) -> tuple[Any, Any] | None:
        if self.resizer is None:
            try:
                from cykooz_resizer import FilterType, ResizeAlg, ResizeOptions, Resizer
            except ImportError:
                return None
            self.options = ResizeOptions(resize_alg=ResizeAlg.convolution(FilterType.bilinear))
            self.resizer = Resizer()
        return self.resizer, self.options

    def take_buffer(self, size: int) -> bytearray:
        """A buffer of at least ``size`` bytes. Kept for the thread's next picture: whatever was
        decoded into it before must be finished with (a render uses its picture and returns bytes)."""
        if size > KEPT_BUFFER_BYTES:
            return bytearray(size)
        if self.buffer is None or len(self.buffer) < size:
            self.buffer = None  # the old one is let go before the new one is made
            self.buffer = bytearray(size)
        return self.buffer


_native = _Native()


def decode_webp(body: bytes) -> Image.Image | None:
    """A still WebP decoded by libwebp into this thread's kept buffer (the picture is valid until
    the thread's next call), as an RGB or RGBA picture. None when Pillow should decode instead: the
    ``webp`` package is missing, the picture is animated, carries a colour profile or is not a WebP
    libwebp can read, or it is larger than Pillow's decompression-bomb limit (Pillow then refuses it
    in its own words)."""
    if body[12:16] == b"VP8X" and len(body) > 20 and body[20] & 0x20:
        return None  # it carries an ICC profile: Pillow reads it, and a PNG page keeps it
    try:
        import webp
    except ImportError:
        return None
    data = webp.WebPData.from_buffer(body)
    config = webp.WebPDecoderConfig.new()
    try:
        config.read_features(data)
    except webp.WebPError:
        return None
    features = config.input
    width, height = features.width, features.height
    limit = Image.MAX_IMAGE_PIXELS
    if features.has_animation or (limit is not None and width * height > limit):
        return None
    mode, color = ("RGBA", webp.WebPColorMode.RGBA) if features.has_alpha else ("RGB", webp.WebPColorMode.RGB)
    stride = width * len(mode)
    buffer = _native.take_buffer(stride * height)
    target = webp.ffi.from_buffer(buffer)
    output = config.output
    output.colorspace = color.value
    output.u.RGBA.rgba = webp.ffi.cast("uint8_t*", target)
    output.u.RGBA.size = stride * height
    output.u.RGBA.stride = stride
    output.is_external_memory = 1
    status = webp.lib.WebPDecode(data.ptr.bytes, data.size, config.ptr)
    webp.lib.WebPFreeDecBuffer(webp.ffi.addressof(config.ptr, "output"))
    if status != webp.lib.VP8_STATUS_OK:
        return None  # truncated or corrupt: Pillow says what is wrong
    return Image.frombuffer(mode, (width, height), buffer, "raw", mode, 0, 1)


def scaled(picture: Image.Image, size: tuple[int, int]) -> Image.Image | None:
    """``picture`` scaled to ``size`` with Pillow's bilinear filter (alpha-weighted for RGBA), by
    fast_image_resize; None when Pillow should scale instead (no wheel here, or an LA picture)."""
    fast = _native.scaler() if picture.mode in ("RGB", "RGBA", "L") else None
    if fast is None:
        return None
    resizer, options = fast
    result = Image.new(picture.mode, size)
    resizer.resize_pil(picture, result, options)
    return result
