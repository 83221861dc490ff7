"""Streamed pages decoded and scaled natively (app/outputs/opds/pixels.py): the same pictures as
Pillow alone makes, and Pillow still does the work where the native packages are missing."""

from __future__ import annotations

import io
import sys
import threading
from collections.abc import Callable
from typing import TypeVar

import cykooz_resizer
import pytest
from PIL import Image, ImageChops, ImageCms, ImageStat, WebPImagePlugin

from app.outputs.opds import pages, pixels
from app.sources.jm_stream import PageImage
from tests.fakes import images

T = TypeVar("T")


def difference(a: Image.Image, b: Image.Image) -> float:
    """The largest per-channel mean absolute difference (0-255)."""
    assert a.size == b.size and a.mode == b.mode, (a.size, b.size, a.mode, b.mode)
    return max(ImageStat.Stat(ImageChops.difference(a, b)).mean)


def in_new_thread(call: Callable[[], T], monkeypatch: pytest.MonkeyPatch, *missing: str) -> T:
    """``call()`` in a thread of its own (its own resizer and buffer), where the ``missing``
    packages cannot be imported, as on a platform without their wheels."""
    with monkeypatch.context() as patch:
        for package in missing:
            patch.setitem(sys.modules, package, None)  # import raises ImportError
        result: list[T] = []
        worker = threading.Thread(target=lambda: result.append(call()))
        worker.start()
        worker.join()
    assert result, "the call raised in its thread"
    return result[0]


def with_transparency(size: tuple[int, int] = (300, 420)) -> Image.Image:
    picture = images.make_picture("transparent page", size).convert("RGBA")
    alpha = Image.new("L", picture.size, 255)
    alpha.paste(0, (0, 0, size[0] // 3, size[1]))  # a clear band and a half-clear one, as PNG pages may have
    alpha.paste(128, (size[0] // 3, 0, size[0] // 2, size[1]))
    picture.putalpha(alpha)
    return picture


def premultiplied(picture: Image.Image) -> Image.Image:
    """Transparent pixels carry no colour to compare."""
    return picture.convert("RGBa").convert("RGBA") if picture.mode == "RGBA" else picture


def webp(picture: Image.Image, **options: object) -> bytes:
    buffer = io.BytesIO()
    picture.save(buffer, "WEBP", **options)
    return buffer.getvalue()


def pillow_decoded(body: bytes) -> Image.Image:
    picture = Image.open(io.BytesIO(body))
    picture.load()
    return picture


@pytest.mark.parametrize("mode", ["RGB", "RGBA"])
@pytest.mark.parametrize("lossless", [False, True])
def test_a_still_webp_decodes_natively_to_what_pillow_decodes(mode: str, lossless: bool) -> None:
    picture = with_transparency() if mode == "RGBA" else images.make_picture("webp page", (300, 420))
    body = webp(picture, quality=80, lossless=lossless)
    native = pixels.decode_webp(body)
    assert native is not None and native.mode == mode and native.size == picture.size
    assert ImageChops.difference(native, pillow_decoded(body)).getbbox() is None  # the same libwebp: identical


def test_the_kept_buffer_serves_the_next_page_of_any_size_in_its_thread(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(pixels, "KEPT_BUFFER_BYTES", 300 * 400 * 3)  # the 400x600 page is too large to keep
    bodies = [webp(images.make_picture(f"page {n}", size), quality=80)
              for n, size in enumerate([(200, 300), (400, 600), (120, 90), (300, 400)])]

    def decode_all() -> list[int]:
        kept = []
        for body in bodies:  # larger, then smaller than the buffer kept: each decodes whole and right
            native = pixels.decode_webp(body)
            assert native is not None
            assert ImageChops.difference(native, pillow_decoded(body)).getbbox() is None
            kept.append(len(pixels._native.buffer or b""))
        return kept

    # a thread of its own: its buffer goes with it
    assert in_new_thread(decode_all, monkeypatch) == [200 * 300 * 3, 200 * 300 * 3, 200 * 300 * 3, 300 * 400 * 3]


@pytest.mark.parametrize("case", ["animated", "colour profile", "corrupt", "too many pixels", "package missing"])
def test_pillow_decodes_what_the_native_decoder_does_not_take(case: str, monkeypatch: pytest.MonkeyPatch) -> None:
    frames = [images.make_picture(f"frame {n}", (120, 90)) for n in range(2)]
    body = webp(frames[0], quality=80)
    missing: tuple[str, ...] = ()
    if case == "animated":
        body = webp(frames[0], save_all=True, append_images=frames[1:], duration=100)
    elif case == "colour profile":  # Pillow keeps it in the picture's info (PNG pages carry it on)
        profile = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
        body = webp(frames[0], quality=80, icc_profile=profile)
        assert pillow_decoded(body).info.get("icc_profile") == profile
    elif case == "corrupt":
        body = body[:-300]  # cut short: Pillow says what is wrong
    elif case == "too many pixels":
        monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 120 * 90 - 1)
    else:
        missing = ("webp",)
    assert in_new_thread(lambda: pixels.decode_webp(body), monkeypatch, *missing) is None


def test_a_webp_page_is_rendered_without_pillows_webp_decoder(monkeypatch: pytest.MonkeyPatch) -> None:
    picture = images.make_picture("rendered page", (600, 850))
    body = webp(picture, quality=80)
    expected = pillow_decoded(body).resize((300, 425), Image.Resampling.BILINEAR)
    with_pillow = in_new_thread(lambda: pages.render(PageImage(body, 0, "00001.webp"), 300), monkeypatch,
                                "webp", "cykooz_resizer")

    def refused(self: object) -> None:
        raise AssertionError("Pillow's WebP decoder was used")

    monkeypatch.setattr(WebPImagePlugin.WebPImageFile, "_open", refused)
    native = pages.render(PageImage(body, 0, "00001.webp"), 300)
    rendered = []
    for data, ext in (native, with_pillow):
        assert ext == ".jpg"
        rendered.append(Image.open(io.BytesIO(data)).convert("RGB"))
        assert rendered[-1].size == (300, 425) and difference(rendered[-1], expected) < 8.0  # JPEG of noise
    assert difference(*rendered) < 1.0  # the same page either way


@pytest.mark.parametrize("max_width", [None, 300])
def test_a_transparent_webp_page_renders_as_the_same_png_either_way(
    max_width: int | None, monkeypatch: pytest.MonkeyPatch
) -> None:
    body = webp(with_transparency((600, 840)), lossless=True)
    page = PageImage(body, 0, "00001.webp")
    native = pages.render(page, max_width)
    with_pillow = in_new_thread(lambda: pages.render(page, max_width), monkeypatch, "webp", "cykooz_resizer")
    pictures = []
    for data, ext in (native, with_pillow):
        assert ext == ".png"  # transparency kept
        pictures.append(Image.open(io.BytesIO(data)))
        assert pictures[-1].mode == "RGBA" and pictures[-1].size == ((600, 840) if max_width is None else (300, 420))
    assert difference(*(premultiplied(p) for p in pictures)) < (0.01 if max_width is None else 1.0)


@pytest.mark.parametrize("mode", ["RGB", "L", "RGBA", "LA"])
def test_pages_are_scaled_like_pillows_bilinear_with_or_without_the_fast_resizer(
    monkeypatch: pytest.MonkeyPatch, mode: str
) -> None:
    page = with_transparency().convert(mode) if mode in ("RGBA", "LA") else images.make_picture(
        "scaled page", (300, 420)).convert(mode)
    calls: list[tuple[int, int]] = []
    resize_pil = cykooz_resizer.Resizer.resize_pil

    def counted(self: cykooz_resizer.Resizer, src: Image.Image, dst: Image.Image, options: object = None) -> None:
        calls.append(dst.size)
        resize_pil(self, src, dst, options)  # type: ignore[arg-type]

    monkeypatch.setattr(cykooz_resizer.Resizer, "resize_pil", counted)
    for width in (270, 100, 20):  # a little narrower (a phone), a third, much smaller
        fast = pages._scaled(page, width)
        pillow = page.resize(fast.size, Image.Resampling.BILINEAR, reducing_gap=2.0)
        without = in_new_thread(lambda w=width: pages._scaled(page, w), monkeypatch, "cykooz_resizer")
        for scaled in (fast, without):
            assert scaled.mode == page.mode and scaled.width == width
            assert abs(scaled.height - round(420 * width / 300)) <= 1
            # the same filter: only rounding apart (Pillow's own reduces by a whole factor with a
            # box filter first, below a quarter of the width)
            tolerance = 1.0 if width > 75 else 4.0
            assert difference(premultiplied(scaled), premultiplied(pillow)) < tolerance, (mode, width)
    # Linux on x86-64, macOS and Windows have the resizer's wheel: RGB, L and RGBA pages go through
    # it; LA (which it does not take) stays with Pillow
    assert calls == ([] if mode == "LA" else [(w, round(420 * w / 300)) for w in (270, 100, 20)])
    assert pages._scaled(page, 300) is page  # not wider than asked: untouched
