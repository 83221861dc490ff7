"""The keep rules of de-duplication: which copy stays, and which kept image a dropped one names."""

from __future__ import annotations

from app.outputs.dedupe import Candidate, ImageFacts, find_duplicates
from app.outputs.exports.options import DedupeOptions


def image(name: str, *, order: int, pixels: int = 100, size: int = 1000, score: int = 0,
          dhash: int = 0, phash: int = 0) -> Candidate:
    return Candidate(file=f"{name}.png", md5=name, post_id=order, score=score, order=order,
                     facts=ImageFacts(width=pixels, height=1, file_size=size, dhash=dhash, phash=phash))


def kept_and_dropped(images: list[Candidate], **options: object) -> tuple[set[str], dict[str, str]]:
    dropped = find_duplicates(images, DedupeOptions.model_validate(options))
    gone = {d.image.md5: d.kept.md5 for d in dropped}
    return {i.md5 for i in images} - set(gone), gone


def test_largest_keeps_more_pixels_then_more_bytes_then_the_first_listed() -> None:
    images = [image("a", order=0, pixels=50), image("b", order=1, pixels=100, size=10),
              image("c", order=2, pixels=100, size=20), image("d", order=3, pixels=100, size=20)]
    assert kept_and_dropped(images) == ({"c"}, {"a": "c", "b": "c", "d": "c"})


def test_highest_score_and_first_rules() -> None:
    images = [image("a", order=0, pixels=50, score=9), image("b", order=1, pixels=100, score=1),
              image("c", order=2, pixels=200, score=9)]
    assert kept_and_dropped(images, keep="highest_score") == ({"c"}, {"a": "c", "b": "c"})
    assert kept_and_dropped(images, keep="first") == ({"a"}, {"b": "a", "c": "a"})


def test_both_distances_must_be_within_the_thresholds_and_the_closest_kept_image_is_named() -> None:
    far_dhash = image("x", order=0, dhash=0b1_1111_1111)  # 9 bits from 0: beyond the default 8
    base = image("y", order=1)
    assert kept_and_dropped([far_dhash, base], keep="first") == ({"x", "y"}, {})
    # z is within reach of both kept images; it names the closer one (dhash + phash)
    one, two = image("p", order=0, dhash=0b11_1111), image("q", order=1, dhash=0b1_1111_1100_0000)  # 13 apart
    z = image("z", order=2, dhash=0b111)  # 3 from p, 10 from q
    assert kept_and_dropped([one, two, z], keep="first", dhash=12) == ({"p", "q"}, {"z": "p"})


def test_images_that_are_not_pictures_are_never_dropped() -> None:
    video = Candidate(file="v.mp4", md5="v", post_id=1, score=0, order=0, facts=ImageFacts(0, 0, 10))
    assert kept_and_dropped([video, image("a", order=1)]) == ({"v", "a"}, {})
