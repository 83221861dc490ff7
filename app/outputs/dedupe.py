"""Near-duplicate images by dHash and pHash (imagehash, 64-bit): no model weights, a few ms per image.

Two images are duplicates when both Hamming distances are at or below the thresholds. Images are
walked in the keep rule's order of preference; one that duplicates an image already kept is dropped
as a duplicate of the closest kept one, anything else is kept. So no two kept images are duplicates
and every dropped image names a kept image the rule prefers.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from PIL import Image

from app.outputs.exports.options import DedupeOptions

HASH_SIZE = 8


@dataclass(slots=True, frozen=True)
class ImageFacts:
    """What one image file is: its decoded size, its bytes on disk and (when asked) its two hashes."""

    width: int
    height: int
    file_size: int
    dhash: int | None = None  # the 64 bits as an int, so a distance is one popcount
    phash: int | None = None

    @property
    def decoded(self) -> bool:
        return self.width > 0 and self.height > 0


def _bits(image_hash: Any) -> int:
    value = 0
    for bit in image_hash.hash.flatten():
        value = (value << 1) | int(bool(bit))
    return value


def inspect_image(path: Path, with_hashes: bool) -> ImageFacts:
    """Blocking (Pillow decodes the image): run it in a pool, never on the event loop."""
    file_size = path.stat().st_size
    try:
        with Image.open(path) as img:
            width, height = img.size
            if not with_hashes:
                return ImageFacts(width, height, file_size)
            import imagehash  # numpy and scipy load only when a dataset is de-duplicated

            return ImageFacts(width, height, file_size, _bits(imagehash.dhash(img, HASH_SIZE)),
                              _bits(imagehash.phash(img, HASH_SIZE)))
    except (OSError, ValueError, Image.DecompressionBombError):  # a video, or not an image Pillow knows
        return ImageFacts(0, 0, file_size)


@dataclass(slots=True, frozen=True)
class Candidate:
    file: str
    md5: str
    post_id: int | None
    score: int
    order: int  # the site's order (first listed first)
    facts: ImageFacts


@dataclass(slots=True, frozen=True)
class Dropped:
    image: Candidate
    kept: Candidate
    dhash: int
    phash: int


def _preference(rule: str) -> Any:
    def largest(c: Candidate) -> tuple[int, ...]:
        return (-c.facts.width * c.facts.height, -c.facts.file_size, c.order)

    if rule == "largest":
        return largest
    if rule == "highest_score":
        return lambda c: (-c.score, *largest(c))
    return lambda c: (c.order,)


def find_duplicates(candidates: Sequence[Candidate], options: DedupeOptions) -> list[Dropped]:
    """The images to drop, each with the kept image it duplicates and both distances."""
    kept: list[Candidate] = []
    dropped: list[Dropped] = []
    for image in sorted(candidates, key=_preference(options.keep)):
        if image.facts.dhash is None or image.facts.phash is None:
            continue  # not decodable as an image: nothing to compare, never dropped
        best: Dropped | None = None
        for other in kept:
            assert other.facts.dhash is not None and other.facts.phash is not None
            d = (image.facts.dhash ^ other.facts.dhash).bit_count()
            if d > options.dhash:
                continue
            p = (image.facts.phash ^ other.facts.phash).bit_count()
            if p > options.phash:
                continue
            if best is None or d + p < best.dhash + best.phash:  # on a tie the one kept first stays
                best = Dropped(image, other, d, p)
        if best is None:
            kept.append(image)
        else:
            dropped.append(best)
    return dropped


def dupes_report(dropped: Sequence[Dropped], options: DedupeOptions) -> dict[str, Any]:
    """The ``dupes.json`` document."""
    return {
        "algorithm": "dhash+phash",
        "hash_size": HASH_SIZE,
        "thresholds": {"dhash": options.dhash, "phash": options.phash},
        "keep": options.keep,
        "dropped": [
            {"file": d.image.file, "md5": d.image.md5, "post_id": d.image.post_id, "kept": d.kept.file,
             "kept_post_id": d.kept.post_id, "dhash": d.dhash, "phash": d.phash}
            for d in sorted(dropped, key=lambda d: d.image.file)
        ],
    }
