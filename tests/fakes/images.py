"""Deterministic test pictures for the upstream doubles.

Every picture is a pure function of a seed string: the same seed always gives the same pixels,
so a test can recompute what a double served and compare pixel for pixel. The pictures are
built from Pillow primitives (no per-pixel Python loops), so even a 200-page album is cheap.
"""

from __future__ import annotations

import io
import zlib

from PIL import Image, ImageDraw

DEFAULT_SIZE = (200, 300)

_GRADIENT = Image.linear_gradient("L")  # 256x256, value = row index


def _seed_int(seed: str) -> int:
    return zlib.crc32(seed.encode("utf-8")) & 0xFFFFFFFF


def make_picture(seed: str, size: tuple[int, int] = DEFAULT_SIZE) -> Image.Image:
    """An RGB picture unique to ``seed``: colour gradients along both axes plus a stripe
    pattern and the seed written on it. Every row differs from every other row, so a picture
    whose horizontal strips were put back in the wrong order never equals the original."""
    w, h = size
    s = _seed_int(seed)
    vertical = _GRADIENT.resize((w, h), Image.Resampling.BILINEAR)
    horizontal = _GRADIENT.transpose(Image.Transpose.ROTATE_90).resize((w, h), Image.Resampling.BILINEAR)
    # fine-grained row index (mod 256) so neighbouring rows differ even when h > 256
    row_index = Image.new("L", (1, h))
    row_index.putdata([(y * 7 + (s >> 8)) & 0xFF for y in range(h)])
    rows = row_index.resize((w, h), Image.Resampling.NEAREST)

    r = horizontal.point(lambda v, k=s & 0xFF: (v + k) & 0xFF)
    g = rows
    b = vertical.point(lambda v, k=(s >> 16) & 0xFF: (v * 3 + k) & 0xFF)
    img = Image.merge("RGB", (r, g, b))

    draw = ImageDraw.Draw(img)
    box_h = max(12, h // 12)
    draw.rectangle((4, 4, w - 5, 4 + box_h), fill=(255, 255, 255))
    draw.text((8, 6), seed[:40], fill=(0, 0, 0))
    return img


def encode(img: Image.Image, fmt: str) -> bytes:
    """Encode ``img`` deterministically. ``fmt``: "webp" (lossless), "png", "jpeg", "gif"."""
    buf = io.BytesIO()
    fmt = fmt.lower().lstrip(".")
    if fmt == "webp":
        img.save(buf, "WEBP", lossless=True, quality=0, method=0, exact=True)
    elif fmt == "png":
        img.save(buf, "PNG", compress_level=1)
    elif fmt in ("jpg", "jpeg"):
        img.convert("RGB").save(buf, "JPEG", quality=85)
    elif fmt == "gif":
        img.convert("P").save(buf, "GIF")
    else:
        raise ValueError(f"unsupported format {fmt!r}")
    return buf.getvalue()


def scramble(img: Image.Image, num: int) -> Image.Image:
    """The exact inverse of jmcomic's ``JmImageTool.decode_and_save`` for ``num`` strips.

    jmcomic rebuilds picture D from served picture S with, for strip i:
    ``D[y_dst : y_dst+move] = S[y_src : y_src+move]``; this builds S from D by the same
    arithmetic the other way round, so jmcomic's descrambling returns the original pixels."""
    if num <= 0:
        return img.copy()
    w, h = img.size
    out = Image.new(img.mode, (w, h))
    for y_src, y_dst, move in _strips(h, num):
        out.paste(img.crop((0, y_dst, w, y_dst + move)), (0, y_src, w, y_src + move))
    return out


def unscramble(img: Image.Image, num: int) -> Image.Image:
    """Same algorithm as jmcomic's ``decode_and_save`` (without saving), for self-checks."""
    if num <= 0:
        return img.copy()
    w, h = img.size
    out = Image.new(img.mode, (w, h))
    for y_src, y_dst, move in _strips(h, num):
        out.paste(img.crop((0, y_src, w, y_src + move)), (0, y_dst, w, y_dst + move))
    return out


def _strips(h: int, num: int) -> list[tuple[int, int, int]]:
    """jmcomic's strip plan for a picture ``h`` pixels high cut into ``num`` strips: for strip i,
    the served rows ``y_src..y_src+move`` become the picture's rows ``y_dst..y_dst+move``."""
    over = h % num
    plan = []
    for i in range(num):
        move = h // num
        y_src = h - (move * (i + 1)) - over
        y_dst = move * i
        if i == 0:
            move += over
        else:
            y_dst += over
        plan.append((y_src, y_dst, move))
    return plan
